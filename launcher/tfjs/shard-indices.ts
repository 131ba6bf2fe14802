/**
 * Which dataset indices a rank reads: torch.utils.data.DistributedSampler's rule, so that code
 * and intuition carry over from PyTorch (and the tests compare against torch's own output).
 */
import { torchRandperm, TORCH_RANDPERM_SMALL_N_LIMIT } from "./mt19937";

export interface ShardOptions {
  /** This process's rank, in [0, worldSize). */
  rank: number;
  /** How many processes share the data; an integer >= 1. */
  worldSize: number;
  /** Base seed of the shuffle; every rank must pass the same one. Default 0. */
  seed?: number;
  /** Permute the indices before sharding (the same permutation on every rank). Default false. */
  shuffle?: boolean;
  /**
   * true: drop the tail so every rank gets floor(total / worldSize) indices.
   * false (default): pad by repeating indices from the start so every rank gets
   * ceil(total / worldSize); a few samples are then seen twice per epoch.
   */
  dropLast?: boolean;
  /** Mixed into the seed (seed + epoch), as DistributedSampler.set_epoch does. Default 0. */
  epoch?: number;
}

const OPTION_NAMES = ["rank", "worldSize", "seed", "shuffle", "dropLast", "epoch"] as const;

/**
 * The indices into a dataset of `total` samples that `rank` reads, in order: what
 * `list(DistributedSampler(ds, num_replicas=worldSize, rank=rank, shuffle=shuffle, seed=seed,
 * drop_last=dropLast))` yields after `set_epoch(epoch)`, index for index (shuffled runs included,
 * for total below ~214 million, where torch's randperm changes algorithm).
 *
 * Every rank gets the same number of indices. When `total` is divisible by `worldSize`, the
 * ranks' lists are disjoint and together cover 0..total-1 exactly once.
 */
export function shardIndices(total: number, options: ShardOptions): number[] {
  const { rank, worldSize, seed = 0, shuffle = false, dropLast = false, epoch = 0 } = validate(total, options);

  let indices: number[];
  if (shuffle) {
    // torch seeds a fresh generator with seed + epoch; its mt19937 keeps the low 32 bits
    // (negative seeds are taken as 2^64 + seed, whose low 32 bits are the same).
    const mixed = seed + epoch;
    indices = torchRandperm(total, ((mixed % 2 ** 32) + 2 ** 32) % 2 ** 32);
  } else {
    indices = Array.from({ length: total }, (_, i) => i);
  }

  const numSamples = dropLast ? Math.floor(total / worldSize) : Math.ceil(total / worldSize);
  const totalSize = numSamples * worldSize;
  if (totalSize > indices.length) {
    // Pad from the start; when more padding is needed than there are indices (worldSize > total),
    // torch repeats the whole list as often as needed: (indices * ceil(pad / len))[:pad].
    const padded = indices.slice();
    for (let i = 0; padded.length < totalSize; i++) padded.push(indices[i % indices.length]);
    indices = padded;
  } else {
    indices = indices.slice(0, totalSize);
  }

  // Strided, not contiguous: indices[rank : totalSize : worldSize].
  const mine = new Array<number>(numSamples);
  for (let k = 0; k < numSamples; k++) mine[k] = indices[rank + k * worldSize];
  return mine;
}

function validate(total: number, options: ShardOptions): ShardOptions {
  const fail = (what: string): never => {
    throw new RangeError(`shardIndices: ${what}`);
  };
  if (!Number.isSafeInteger(total) || total < 0) {
    fail(`total must be a non-negative integer (the dataset's length), got ${show(total)}`);
  }
  if (options === null || typeof options !== "object") {
    fail(`the second argument must be an options object { rank, worldSize, ... }, got ${show(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!(OPTION_NAMES as readonly string[]).includes(key)) {
      fail(`unknown option "${key}"; accepted options: ${OPTION_NAMES.join(", ")}`);
    }
  }
  const { rank, worldSize, seed = 0, shuffle = false, dropLast = false, epoch = 0 } = options;
  if (!Number.isSafeInteger(worldSize) || worldSize < 1) {
    fail(`worldSize must be an integer >= 1 (the number of processes), got ${show(worldSize)}`);
  }
  if (!Number.isSafeInteger(rank) || rank < 0 || rank >= worldSize) {
    fail(`rank must be an integer in [0, ${worldSize - 1}] for worldSize ${worldSize}, got ${show(rank)}`);
  }
  if (!Number.isSafeInteger(seed)) fail(`seed must be an integer, got ${show(seed)}`);
  if (!Number.isSafeInteger(epoch)) fail(`epoch must be an integer, got ${show(epoch)}`);
  if (!Number.isSafeInteger(seed + epoch)) fail(`seed + epoch must stay a safe integer, got ${seed} + ${epoch}`);
  if (typeof shuffle !== "boolean") fail(`shuffle must be true or false, got ${show(shuffle)}`);
  if (typeof dropLast !== "boolean") fail(`dropLast must be true or false, got ${show(dropLast)}`);
  if (shuffle && total >= TORCH_RANDPERM_SMALL_N_LIMIT) {
    fail(`shuffle supports total < ${TORCH_RANDPERM_SMALL_N_LIMIT}, got ${total}`);
  }
  return options;
}

function show(value: unknown): string {
  return typeof value === "string" ? JSON.stringify(value) : String(value);
}

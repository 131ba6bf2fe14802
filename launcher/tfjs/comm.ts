/**
 * The collectives these helpers need, as a tiny interface: the real ones live in "tslaunch";
 * tests and notebooks can pass their own (e.g. an in-process simulation).
 */
import { allReduce, broadcast, state } from "../api";

export type ReduceOp = "sum" | "mean" | "max" | "min" | "product";
export type CollectiveArray = Float32Array | Float64Array | Int32Array;

export interface Comm {
  /** Reduces `x` element-wise across all ranks, in place; every rank ends with the same values. */
  allReduce<T extends CollectiveArray>(x: T, op?: ReduceOp): Promise<T>;
  /** Overwrites `x` on every rank with rank `src`'s `x`, in place. */
  broadcast<T extends CollectiveArray>(x: T, src?: number): Promise<T>;
  /** This process's rank, in [0, worldSize). */
  readonly rank: number;
  /** Number of processes taking part. */
  readonly worldSize: number;
}

/** Shape of the parts of the "tslaunch" module that defaultComm reads. */
interface TslaunchModule {
  allReduce?: unknown;
  broadcast?: unknown;
  state?: { processIndex?: unknown; numProcesses?: unknown };
}

/**
 * The collectives of the tslaunch worker this runs in (outside a launch: one process, rank 0).
 * `load` is injectable for tests.
 */
export function defaultComm(load: () => unknown = () => ({ allReduce, broadcast, state })): Comm {
  let mod: TslaunchModule;
  try {
    mod = load() as TslaunchModule;
  } catch (err) {
    throw new Error(
      `tslaunch/tfjs: no \`comm\` was passed and the "tslaunch" package could not be loaded ` +
        `(${(err as Error).message.split("\n")[0]}). Run inside a tslaunch launch, or pass ` +
        `{ comm: { allReduce, broadcast, rank, worldSize } } explicitly.`,
    );
  }
  const { allReduce, broadcast, state } = mod ?? {};
  if (typeof allReduce !== "function" || typeof broadcast !== "function" || state == null) {
    throw new Error(
      `tslaunch/tfjs: the loaded "tslaunch" module lacks ${[
        typeof allReduce !== "function" && "allReduce()",
        typeof broadcast !== "function" && "broadcast()",
        state == null && "state",
      ]
        .filter(Boolean)
        .join(", ")}; this tslaunch is too old for tslaunch/tfjs, or pass { comm } explicitly.`,
    );
  }
  return {
    allReduce: allReduce as Comm["allReduce"],
    broadcast: broadcast as Comm["broadcast"],
    // Read on each access: state reflects the worker's environment, which is the source of truth.
    get rank() {
      return state.processIndex as number;
    },
    get worldSize() {
      return state.numProcesses as number;
    },
  };
}

/** The comm to use: the one passed, else tslaunch's; checked so misuse fails with a clear message. */
export function resolveComm(comm: Comm | undefined, caller: string): Comm {
  const c = comm ?? defaultComm();
  const { rank, worldSize } = c;
  if (typeof c.allReduce !== "function" || typeof c.broadcast !== "function") {
    throw new TypeError(`${caller}: comm must have allReduce() and broadcast() functions`);
  }
  if (!Number.isSafeInteger(worldSize) || worldSize < 1) {
    throw new RangeError(`${caller}: comm.worldSize must be an integer >= 1, got ${String(worldSize)}`);
  }
  if (!Number.isSafeInteger(rank) || rank < 0 || rank >= worldSize) {
    throw new RangeError(`${caller}: comm.rank must be an integer in [0, ${worldSize - 1}], got ${String(rank)}`);
  }
  return c;
}

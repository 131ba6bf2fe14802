/**
 * MT19937, the 32-bit Mersenne Twister, seeded the way PyTorch seeds its CPU generator.
 *
 * Why our own: shuffled shards must be identical on every rank and reproducible across runs,
 * so the generator must be deterministic and independent of the tfjs backend (tfjs's own
 * seeded ops are not meant as an index source). Using the same generator as
 * `torch.Generator().manual_seed(s)` also makes `shardIndices(..., { shuffle: true })` return
 * the very indices torch's DistributedSampler returns, which the tests check against torch.
 */
const N = 624;
const M = 397;
const MATRIX_A = 0x9908b0df;
const UPPER_MASK = 0x80000000;
const LOWER_MASK = 0x7fffffff;

export class MT19937 {
  private readonly state = new Uint32Array(N);
  private index = N;

  /** `seed` is reduced modulo 2^32, as torch's mt19937 keeps only the low 32 bits of its uint64 seed. */
  constructor(seed: number) {
    this.state[0] = seed >>> 0;
    for (let i = 1; i < N; i++) {
      const prev = this.state[i - 1] ^ (this.state[i - 1] >>> 30);
      // Math.imul keeps the product's low 32 bits, which is what the C reference computes.
      this.state[i] = (Math.imul(1812433253, prev) + i) >>> 0;
    }
  }

  /** The next 32-bit output, as a number in [0, 2^32). */
  nextUint32(): number {
    if (this.index >= N) this.twist();
    let y = this.state[this.index++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  private twist(): void {
    const s = this.state;
    for (let k = 0; k < N; k++) {
      const y = (s[k] & UPPER_MASK) | (s[(k + 1) % N] & LOWER_MASK);
      s[k] = s[(k + M) % N] ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
    }
    this.index = 0;
  }
}

/**
 * Largest n for which torch's CPU randperm uses the Fisher-Yates variant below; above it torch
 * switches to 64-bit draws (aten randperm_cpu: `n < std::numeric_limits<uint32_t>::max() / 20`).
 */
export const TORCH_RANDPERM_SMALL_N_LIMIT = Math.floor(0xffffffff / 20);

/**
 * The permutation `torch.randperm(n, generator=torch.Generator().manual_seed(seed))` returns on
 * CPU, for n below TORCH_RANDPERM_SMALL_N_LIMIT: a forward Fisher-Yates shuffle drawing
 * `random() % (n - i)` from MT19937.
 */
export function torchRandperm(n: number, seed: number): number[] {
  if (!Number.isSafeInteger(n) || n < 0 || n >= TORCH_RANDPERM_SMALL_N_LIMIT) {
    throw new RangeError(
      `torchRandperm: n must be an integer in [0, ${TORCH_RANDPERM_SMALL_N_LIMIT}), got ${String(n)}`,
    );
  }
  const perm = new Array<number>(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  const gen = new MT19937(seed);
  for (let i = 0; i < n - 1; i++) {
    const z = i + (gen.nextUint32() % (n - i));
    const tmp = perm[i];
    perm[i] = perm[z];
    perm[z] = tmp;
  }
  return perm;
}

// Step counters in shared memory: each local rank publishes how many steps it has completed, and
// waits until all others have reached a step. This is the only synchronisation between local ranks.
//
// Waiting strategy (measured on this 2-core machine, see README): with more ranks than cores a
// busy-waiting rank takes the core from the rank it waits for, so waiters spin only briefly (and only
// when every local rank can have its own core), then sleep in futex(2) on the counter they wait for.
// A rank that advances its counter wakes sleepers only if someone registered as sleeping, so the fast
// path costs no syscall. Atomics.wait cannot be used: the mapping is not a SharedArrayBuffer. Sleeps
// are short slices so the event loop still gets turns (abort(), timers, TCP receives).
import { futexWait, futexWakeAll, schedYield } from "./libc";
import type { OpContext } from "./op-context";

export interface WaitPolicy {
  /** Busy-poll this long before sleeping; 0 to sleep at once. */
  spinUs: number;
  /** Longest single futex sleep before the event loop gets a turn. */
  sliceUs: number;
  /** After spinning, call sched_yield(2) in a loop this long before sleeping (0: sleep at once). */
  yieldUs: number;
}

/** Byte layout of one rank's slot: the counter and the number of ranks sleeping on it share a line. */
export const SLOT_BYTES = 128; // two cache lines: adjacent-line prefetch would otherwise couple ranks
const SLEEPERS = 1; // int32 index within a slot

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * A collective that never has to sleep (every step finds its peers ready) would otherwise keep the
 * event loop from running until it completes: 1 GiB is seconds. Give it a turn at least this often,
 * so abort(), the launcher's heartbeats and timers stay live.
 */
const MAX_BUSY_MS = 10;

export class ProgressBoard {
  private t = 0;

  /**
   * @param words int32 view of the whole segment
   * @param slotsAt byte offset of rank 0's slot
   * @param address address of the segment's byte 0 (futex calls take addresses)
   * @param globalRanks global rank of each local rank, for error messages
   */
  constructor(
    private readonly words: Int32Array,
    private readonly slotsAt: number,
    private readonly address: number,
    private readonly size: number,
    private readonly me: number,
    private readonly globalRanks: number[],
    private readonly policy: WaitPolicy,
  ) {}

  /** Steps this rank has completed (wraps at 2^31; comparisons are wrap-safe). */
  get step(): number {
    return this.t;
  }

  private index(rank: number): number {
    return (this.slotsAt + rank * SLOT_BYTES) >> 2;
  }

  /** Publishes that this rank reached the next step; returns that step. */
  advance(): number {
    this.t = (this.t + 1) | 0;
    const i = this.index(this.me);
    Atomics.store(this.words, i, this.t);
    if (Atomics.load(this.words, i + SLEEPERS) > 0) futexWakeAll(this.address + i * 4);
    return this.t;
  }

  private reached(rank: number, target: number): boolean {
    return ((Atomics.load(this.words, this.index(rank)) - target) | 0) >= 0;
  }

  /** First local rank (from `from`, wrapping) that has not reached `target`, or -1. */
  private firstBehind(target: number, from = 0): number {
    for (let i = 0; i < this.size; i++) {
      const r = (from + i) % this.size;
      if (!this.reached(r, target)) return r;
    }
    return -1;
  }

  /** Global ranks that have not reached `target` (for timeout messages). */
  behind(target: number): { missing: number[] } {
    const missing: number[] = [];
    for (let r = 0; r < this.size; r++) if (!this.reached(r, target)) missing.push(this.globalRanks[r]);
    return { missing };
  }

  /** Resolves once every local rank reached `target`; rejects on abort or at the deadline. */
  async waitAll(target: number, ctx: OpContext): Promise<void> {
    let k = this.firstBehind(target);
    if (k < 0) {
      if (performance.now() - ctx.lastTurn < MAX_BUSY_MS) return;
      await yieldToEventLoop();
      ctx.lastTurn = performance.now();
      ctx.throwIfAborted();
      return;
    }
    ctx.throwIfAborted();
    if (this.policy.spinUs > 0) {
      const until = performance.now() + this.policy.spinUs / 1000;
      for (let i = 1; ; i++) {
        k = this.firstBehind(target, k);
        if (k < 0) return;
        if ((i & 63) === 0 && performance.now() > until) break;
      }
    }
    if (this.policy.yieldUs > 0) {
      const until = performance.now() + this.policy.yieldUs / 1000;
      for (;;) {
        schedYield();
        k = this.firstBehind(target, k);
        if (k < 0) return;
        if (performance.now() > until) break;
      }
    }
    let lastYield = performance.now();
    for (;;) {
      const i = this.index(k);
      Atomics.add(this.words, i + SLEEPERS, 1);
      const seen = Atomics.load(this.words, i);
      if (((seen - target) | 0) < 0) futexWait(this.address + i * 4, seen, this.policy.sliceUs);
      Atomics.sub(this.words, i + SLEEPERS, 1);
      k = this.firstBehind(target, k);
      if (k < 0) return;
      const now = performance.now();
      if (now - lastYield >= this.policy.sliceUs / 1000 || now - ctx.lastTurn >= MAX_BUSY_MS) {
        await yieldToEventLoop();
        ctx.throwIfAborted();
        lastYield = ctx.lastTurn = performance.now();
        k = this.firstBehind(target, k);
        if (k < 0) return;
      }
      if (now >= ctx.deadline) {
        throw ctx.timeoutError(this.behind(target).missing);
      }
    }
  }
}

// One collective in flight: its name, sequence number, deadline, and whether it was aborted. Every wait
// (shared-memory progress, TCP receive) goes through it, so a timeout or abort reads the same on every
// path and names the ranks that were missing.
import { CollectiveError, rankList } from "./errors";
import type { Descriptor } from "./descriptor";

/** Set by the communicator when the next local step is also this collective's arrival. */
export interface PendingArrival {
  desc: Descriptor;
  /** Called with the local ranks' descriptors (local-rank order) right after the arrival step. */
  onArrived(local: Descriptor[]): void;
}

export class OpContext {
  /** False until every rank's descriptor has been seen: a timeout before that means "did not arrive". */
  arrived = false;
  arrival: PendingArrival | undefined;
  private reason: Error | undefined;
  private readonly abortListeners = new Set<(reason: Error) => void>();

  /** During a cross-node arrival: remote ranks not heard from yet, added to a local timeout's list. */
  missingElsewhere: (() => number[]) | undefined;
  readonly deadline: number;
  /** When the event loop last had a turn during this collective (see progress.ts, MAX_BUSY_MS). */
  lastTurn: number;

  constructor(
    readonly kind: string,
    readonly seq: number,
    readonly timeoutMs: number,
    readonly worldSize: number,
  ) {
    this.lastTurn = performance.now();
    this.deadline = this.lastTurn + timeoutMs;
  }

  get aborted(): boolean {
    return this.reason !== undefined;
  }

  get abortReason(): Error | undefined {
    return this.reason;
  }

  abort(reason: Error): void {
    if (this.reason) return;
    this.reason = reason;
    for (const listener of [...this.abortListeners]) listener(reason);
  }

  throwIfAborted(): void {
    if (this.reason) throw this.reason;
  }

  /** Registers a callback for abort(); returns the unsubscribe function. */
  onAbort(listener: (reason: Error) => void): () => void {
    this.abortListeners.add(listener);
    return () => this.abortListeners.delete(listener);
  }

  /** The error for a wait that ran past the deadline; `missing` are global ranks. */
  timeoutError(missingHere: number[]): CollectiveError {
    const missing = [...new Set([...missingHere, ...(this.missingElsewhere?.() ?? [])])].sort((a, b) => a - b);
    const arrivedRanks = [...Array(this.worldSize).keys()].filter((r) => !missing.includes(r));
    const who = rankList(missing);
    const what = this.arrived
      ? `${who} stopped responding during the collective (all ranks had called it)`
      : `${who} did not arrive` + (arrivedRanks.length ? ` (${rankList(arrivedRanks)} did)` : "");
    const hint = this.arrived
      ? "A rank that dies mid-collective is reported by the launcher; check that rank's output."
      : `Every rank must call ${this.kind} (the same collectives in the same order).`;
    return new CollectiveError(
      `${this.kind} #${this.seq} timed out after ${this.timeoutMs} ms: ${what}. ${hint}`,
      this.kind,
      this.seq,
      missing,
    );
  }
}

// The one error type a collective rejects with when the ranks disagree, time out, or a transport fails.
// Input validation errors are plain TypeError/RangeError: they are the caller's own mistake, found
// before any rank is involved.

export class CollectiveError extends Error {
  override readonly name = "CollectiveError";
  constructor(
    message: string,
    /** The collective as this rank called it, e.g. "allReduce". */
    readonly collective: string,
    /** Its sequence number on this communicator (0 for the first collective). */
    readonly seq: number,
    /** Global ranks the error is about (missing ones for a timeout, dissenting ones for a mismatch). */
    readonly ranks: number[] = [],
    /**
     * True when every rank stopped at the same point (the ranks disagreed on the call), so the
     * communicator stays usable; false after a timeout or transport failure, which leaves it broken.
     */
    readonly recoverable = false,
  ) {
    super(message);
  }
}

/** Formats [0, 2, 3] as "ranks 0, 2, 3" and [1] as "rank 1". */
export function rankList(ranks: number[]): string {
  return ranks.length === 1 ? `rank ${ranks[0]}` : `ranks ${ranks.join(", ")}`;
}

// The ranks of one node, talking through one shared-memory segment.
//
// Everything is built from one primitive, the step: a rank writes into its own staging buffer of the
// step's parity, advances its counter, and waits until every local rank has advanced; then it may read
// everyone's buffers of that parity until it advances again. Two parities make this safe without a
// second barrier: a rank writes parity p at step t+2 only after all ranks reached t+1, and every rank
// finished reading step t's buffers before it advanced to t+1.
//
// The first step of every collective doubles as its arrival: each rank also publishes its descriptor,
// and all ranks check the table before touching the caller's array.
import type { Mapping } from "./libc";
import { decodeDescriptor, encodeDescriptor, DESCRIPTOR_WORDS, type Descriptor } from "./descriptor";
import { ProgressBoard, type WaitPolicy } from "./progress";
import { padded, sharedScratch, type DType, type ReduceOp } from "./reduce-kernels";
import type { SegmentLayout } from "./shm-segment";
import type { OpContext } from "./op-context";

export interface LocalTuning {
  /** At or below this many bytes, all-reduce is one step: every rank folds all inputs itself. */
  smallAllReduceBytes: number;
  wait: WaitPolicy;
}

export class LocalGroup {
  readonly size: number;
  private readonly words: Int32Array;
  private readonly board: ProgressBoard;
  private readonly buffers: Uint8Array[]; // [rank * 2 + parity]
  private readonly stagingBytes: number;

  /**
   * @param me this rank's index in `ranks`
   * @param ranks global ranks of the node, in rank order
   */
  constructor(
    private readonly mapping: Mapping,
    private readonly layout: SegmentLayout,
    readonly ranks: number[],
    readonly me: number,
    private readonly tuning: LocalTuning,
  ) {
    this.size = ranks.length;
    this.words = new Int32Array(mapping.buffer);
    this.stagingBytes = layout.stagingBytes;
    this.board = new ProgressBoard(this.words, layout.slotsAt, mapping.address, this.size, me, ranks, tuning.wait);
    this.buffers = [];
    for (let r = 0; r < this.size; r++) {
      for (let p = 0; p < 2; p++) {
        this.buffers.push(new Uint8Array(mapping.buffer, layout.stagingAt + (r * 2 + p) * layout.stagingBytes, layout.stagingBytes));
      }
    }
  }

  /** Unmaps the segment; the group must not be used afterwards. */
  close(): void {
    this.mapping.unmap();
  }

  private staging(rank: number, parity: number): Uint8Array {
    return this.buffers[rank * 2 + parity];
  }

  private descriptorIndex(rank: number, parity: number): number {
    return (this.layout.descriptorsAt >> 2) + (parity * this.size + rank) * DESCRIPTOR_WORDS;
  }

  /**
   * One step: `write` fills this rank's staging buffer for the step, then all local ranks meet.
   * Returns the step's parity (which buffers to read). If the context has a pending arrival, the
   * descriptor goes out with this step and is checked before returning.
   */
  async step(ctx: OpContext, write?: (mine: Uint8Array) => void): Promise<number> {
    ctx.throwIfAborted();
    const next = (this.board.step + 1) | 0;
    const parity = next & 1;
    write?.(this.staging(this.me, parity));
    const arrival = ctx.arrival;
    if (arrival) encodeDescriptor(arrival.desc, this.words, this.descriptorIndex(this.me, parity));
    const target = this.board.advance();
    await this.board.waitAll(target, ctx);
    if (arrival) {
      ctx.arrival = undefined;
      const table: Descriptor[] = [];
      for (let r = 0; r < this.size; r++) table.push(decodeDescriptor(this.words, this.descriptorIndex(r, parity)));
      arrival.onArrived(table);
    }
    return parity;
  }

  /** In-place all-reduce of `bytes` (elements of `dtype`); divides by `divideBy` after summing when > 0. */
  async allReduce(bytes: Uint8Array, dtype: DType, op: ReduceOp, divideBy: number, ctx: OpContext): Promise<void> {
    if (bytes.length <= Math.min(this.tuning.smallAllReduceBytes, this.stagingBytes)) {
      return this.allReduceDirect(bytes, dtype, op, divideBy, ctx);
    }
    return this.allReduceScatterGather(bytes, dtype, op, divideBy, ctx);
  }

  /** Small arrays: one step; every rank folds all inputs (in rank order, so results are identical). */
  private async allReduceDirect(bytes: Uint8Array, dtype: DType, op: ReduceOp, divideBy: number, ctx: OpContext): Promise<void> {
    const n = bytes.length;
    const parity = await this.step(ctx, (mine) => mine.set(bytes));
    if (n === 0) return;
    const stride = padded(n);
    const scratch = sharedScratch(this.size * stride);
    for (let r = 0; r < this.size; r++) scratch.bytes.set(this.staging(r, parity).subarray(0, n), r * stride);
    scratch.fold(dtype, op, 0, 0, stride, this.size, n);
    if (divideBy > 0) scratch.divide(dtype, 0, n, divideBy);
    bytes.set(scratch.bytes.subarray(0, n));
  }

  /**
   * Large arrays, chunk by chunk through the staging buffers: reduce-scatter (rank j folds part j of
   * the chunk from all ranks' buffers, in rank order) then all-gather of the reduced parts. Each rank
   * moves about 3× the array in memory copies and folds 1/size of it; two steps per chunk.
   */
  private async allReduceScatterGather(bytes: Uint8Array, dtype: DType, op: ReduceOp, divideBy: number, ctx: OpContext): Promise<void> {
    const size = this.size;
    const me = this.me;
    // Parts are whole 16-byte vectors so every part starts aligned in the scratch and in staging.
    const chunkBytes = Math.floor(this.stagingBytes / (size * 16)) * size * 16;
    for (let off = 0; off < bytes.length; off += chunkBytes) {
      const c = Math.min(chunkBytes, bytes.length - off);
      const pb = padded(Math.ceil(c / size));
      const lo = (j: number) => Math.min(j * pb, c);
      const hi = (j: number) => Math.min((j + 1) * pb, c);
      // Step 1: everyone stages the parts others reduce (its own part it reads from `bytes` directly).
      const p1 = await this.step(ctx, (mine) => {
        for (let j = 0; j < size; j++) if (j !== me) mine.set(bytes.subarray(off + lo(j), off + hi(j)), lo(j));
      });
      const len = hi(me) - lo(me);
      const scratch = sharedScratch(size * pb);
      for (let r = 0; r < size; r++) {
        const src = r === me ? bytes.subarray(off + lo(me), off + hi(me)) : this.staging(r, p1).subarray(lo(me), hi(me));
        scratch.bytes.set(src, r * pb);
      }
      if (len > 0) {
        scratch.fold(dtype, op, 0, 0, pb, size, len);
        if (divideBy > 0) scratch.divide(dtype, 0, len, divideBy);
      }
      const reduced = scratch.bytes.subarray(0, len);
      bytes.set(reduced, off + lo(me));
      // Step 2: publish the reduced part; copy everyone else's.
      const p2 = await this.step(ctx, (mine) => mine.set(reduced, lo(me)));
      for (let j = 0; j < size; j++) if (j !== me) bytes.set(this.staging(j, p2).subarray(lo(j), hi(j)), off + lo(j));
    }
  }

  /** In-place broadcast from local rank `root`. */
  async broadcast(bytes: Uint8Array, root: number, ctx: OpContext): Promise<void> {
    let off = 0;
    do {
      const c = Math.min(this.stagingBytes, bytes.length - off);
      const parity = await this.step(ctx, this.me === root ? (mine) => mine.set(bytes.subarray(off, off + c)) : undefined);
      if (this.me !== root) bytes.set(this.staging(root, parity).subarray(0, c), off);
      off += this.stagingBytes;
    } while (off < bytes.length);
  }

  /** Every local rank's `mine` lands in `out` at `placeOf(localRank)`. */
  async allGather(mine: Uint8Array, out: Uint8Array, placeOf: (localRank: number) => number, ctx: OpContext): Promise<void> {
    let off = 0;
    do {
      const c = Math.min(this.stagingBytes, mine.length - off);
      const parity = await this.step(ctx, (buf) => buf.set(mine.subarray(off, off + c)));
      for (let r = 0; r < this.size; r++) {
        const src = r === this.me ? mine.subarray(off, off + c) : this.staging(r, parity).subarray(0, c);
        out.set(src, placeOf(r) + off);
      }
      off += this.stagingBytes;
    } while (off < mine.length);
  }

  /** Single-node reduce-scatter: `out` (bytes.length / size bytes) gets this rank's slice, folded in rank order. */
  async reduceScatter(bytes: Uint8Array, out: Uint8Array, dtype: DType, op: ReduceOp, divideBy: number, ctx: OpContext): Promise<void> {
    const size = this.size;
    const me = this.me;
    const slice = out.length;
    // Per step each rank stages a piece of every other rank's slice: size pieces must fit the buffer.
    const piece = Math.floor(this.stagingBytes / (size * 16)) * 16;
    let off = 0;
    do {
      const c = Math.min(piece, slice - off);
      const parity = await this.step(ctx, (buf) => {
        for (let r = 0; r < size; r++) if (r !== me) buf.set(bytes.subarray(r * slice + off, r * slice + off + c), r * piece);
      });
      if (c > 0) {
        const stride = padded(c);
        const scratch = sharedScratch(size * stride);
        for (let r = 0; r < size; r++) {
          const src = r === me ? bytes.subarray(me * slice + off, me * slice + off + c) : this.staging(r, parity).subarray(me * piece, me * piece + c);
          scratch.bytes.set(src, r * stride);
        }
        scratch.fold(dtype, op, 0, 0, stride, size, c);
        if (divideBy > 0) scratch.divide(dtype, 0, c, divideBy);
        out.set(scratch.bytes.subarray(0, c), off);
      }
      off += piece;
    } while (off < slice);
  }

  /** Variable-length all-gather of bytes; `lengths[r]` (known to all from the descriptors) sizes rank r's. */
  async gatherBytes(mine: Uint8Array, lengths: number[], ctx: OpContext): Promise<Uint8Array[]> {
    const out = lengths.map((n, r) => (r === this.me ? mine : new Uint8Array(n)));
    const longest = Math.max(0, ...lengths);
    let off = 0;
    do {
      const parity = await this.step(ctx, (buf) => {
        const c = Math.max(0, Math.min(this.stagingBytes, mine.length - off));
        if (c > 0) buf.set(mine.subarray(off, off + c));
      });
      for (let r = 0; r < this.size; r++) {
        const c = Math.max(0, Math.min(this.stagingBytes, lengths[r] - off));
        if (r !== this.me && c > 0) out[r].set(this.staging(r, parity).subarray(0, c), off);
      }
      off += this.stagingBytes;
    } while (off < longest);
    return out;
  }
}

// Data movement between nodes: the first rank of each node (its leader) exchanges the node's data with
// the other leaders over the signed TCP mesh; the node's other ranks get the result through shared
// memory afterwards. Every leader sends its whole contribution to every other leader and folds what
// it receives in node order, so all leaders compute bitwise-identical results with no extra round.
// Simple rather than bandwidth-optimal: cross-node traffic is (nodes − 1) × the array per leader.
import { CollectiveError } from "./errors";
import type { RemoteMesh } from "./remote-mesh";
import type { OpContext } from "./op-context";
import { padded, sharedScratch, type DType, type ReduceOp } from "./reduce-kernels";

export class NodeLeaders {
  private readonly others: number[];

  /**
   * @param leaders global rank of each node's leader, in node order
   * @param myNode this leader's node index
   * @param chunkBytes largest message; arrays are split so no single ZeroMQ message holds a whole 64 MiB array
   */
  constructor(
    private readonly mesh: RemoteMesh,
    private readonly leaders: number[],
    private readonly myNode: number,
    private readonly chunkBytes: number,
  ) {
    this.others = leaders.filter((_, n) => n !== myNode);
  }

  private timeout(ctx: OpContext) {
    return (missing: number[]) => ctx.timeoutError(missing);
  }

  /** Sends `bytes` in chunks to `to`, each chunk a fresh copy (zeromq.js may keep the buffer). */
  private sendChunks(to: number[], bytes: Uint8Array, seq: number): void {
    for (let off = 0, i = 0; off < bytes.length; off += this.chunkBytes, i++) {
      const chunk = Buffer.from(bytes.subarray(off, Math.min(bytes.length, off + this.chunkBytes)));
      for (const leader of to) this.mesh.send(leader, seq, `chunk${i}`, chunk);
    }
  }

  /** In place: every leader's `bytes` becomes the fold over nodes (node order); divides after when divideBy > 0. */
  async allReduce(bytes: Uint8Array, dtype: DType, op: ReduceOp, divideBy: number, ctx: OpContext): Promise<void> {
    this.sendChunks(this.others, bytes, ctx.seq);
    const nodes = this.leaders.length;
    for (let off = 0, i = 0; off < bytes.length; off += this.chunkBytes, i++) {
      const c = Math.min(this.chunkBytes, bytes.length - off);
      const received = await this.mesh.receiveAll(this.others, ctx.seq, `chunk${i}`, ctx, this.timeout(ctx));
      const stride = padded(c);
      const scratch = sharedScratch(nodes * stride);
      let k = 0;
      for (let n = 0; n < nodes; n++) {
        const src = n === this.myNode ? bytes.subarray(off, off + c) : received[k++];
        if (src.length !== c) {
          throw new CollectiveError(`${ctx.kind} #${ctx.seq}: node ${n} sent ${src.length} bytes for a ${c}-byte chunk`, ctx.kind, ctx.seq);
        }
        scratch.bytes.set(src, n * stride);
      }
      scratch.fold(dtype, op, 0, 0, stride, nodes, c);
      if (divideBy > 0) scratch.divide(dtype, 0, c, divideBy);
      bytes.set(scratch.bytes.subarray(0, c), off);
    }
  }

  /** In place: the leader of `fromNode` sends; the others receive. */
  async broadcast(bytes: Uint8Array, fromNode: number, ctx: OpContext): Promise<void> {
    if (fromNode === this.myNode) {
      this.sendChunks(this.others, bytes, ctx.seq);
      return;
    }
    for (let off = 0, i = 0; off < bytes.length; off += this.chunkBytes, i++) {
      const [chunk] = await this.mesh.receiveAll([this.leaders[fromNode]], ctx.seq, `chunk${i}`, ctx, this.timeout(ctx));
      bytes.set(chunk, off);
    }
  }

  /** Every leader's block reaches every leader; returns the blocks in node order (`lengths[n]` bytes each). */
  async allGather(mine: Uint8Array, lengths: number[], ctx: OpContext): Promise<Uint8Array[]> {
    this.sendChunks(this.others, mine, ctx.seq);
    const blocks = lengths.map((n, node) => (node === this.myNode ? mine : new Uint8Array(n)));
    const longest = Math.max(0, ...lengths);
    for (let off = 0, i = 0; off < longest; off += this.chunkBytes, i++) {
      const from = this.leaders.filter((_, n) => n !== this.myNode && lengths[n] > off);
      const received = await this.mesh.receiveAll(from, ctx.seq, `chunk${i}`, ctx, this.timeout(ctx));
      from.forEach((leader, k) => blocks[this.leaders.indexOf(leader)].set(received[k], off));
    }
    return blocks;
  }
}

// The collectives API a worker uses: allReduce, broadcast, allGather, reduceScatter, the object
// variants and barrier, over shared memory between ranks of one node and signed ZeroMQ TCP between
// nodes (through each node's leader).
//
// Every collective gets the next sequence number and runs after the previous one settled. It starts
// with an arrival: each rank publishes a descriptor (kind, dtype, length, op, src, seq) and checks all
// of them before moving data, so ranks that disagree get an error instead of corrupt data or a hang.
// A timeout or abort() leaves the communicator unusable (its ranks stopped at different steps);
// a disagreement does not (they all stopped right after the arrival).
import { serialize, deserialize } from "node:v8";
import { checkAgreement, decodeDescriptor, encodeDescriptor, DESCRIPTOR_WORDS, OPS, type Descriptor, type Kind } from "./descriptor";
import { CollectiveError } from "./errors";
import { LocalGroup } from "./local-group";
import { NodeLeaders } from "./node-leaders";
import { OpContext } from "./op-context";
import type { DType } from "./reduce-kernels";
import { RemoteMesh } from "./remote-mesh";
import { createSegment, openSegment, segmentLayout, segmentName } from "./shm-segment";
import { unlinkShared, type Mapping } from "./libc";
import { availableParallelism } from "node:os";

export { removeSegments } from "./shm-segment";
export { CollectiveError } from "./errors";

export type ReduceOp = "sum" | "mean" | "max" | "min" | "product";
export type NumericArray = Float32Array | Float64Array | Int32Array;

export interface CommSpec {
  rank: number;
  worldSize: number;
  /** ranksByNode[n] = the global ranks living on node n (rank order). Ranks on the same node talk through shared memory; ranks on different nodes over ZeroMQ TCP. */
  ranksByNode: number[][];
  /** A private (0700) folder of this node's launch, for ipc socket files if you need any. Short path. */
  runDir: string;
  /** Unique per launch attempt (e.g. "tsl-1234-ab12cd"); every /dev/shm name you create must start with "/" + this. */
  segmentPrefix: string;
  /** 32-byte key: sign (HMAC-SHA256) every TCP message between nodes, drop unsigned/forged ones. */
  key: Buffer;
  /** This node's address to bind TCP on (e.g. "127.0.0.1"). */
  host: string;
  /** Control-plane all-gather of one short string per rank (provided by the launcher; resolves to all ranks' strings, rank-ordered). */
  exchange(mine: string): Promise<string[]>;
  /** Collective timeout (default in the launcher: 300 000 ms). */
  timeoutMs: number;
}

/** Performance knobs; the defaults are what measured best on a 2-core machine (see README). */
export interface Tuning {
  /** Bytes of each rank's staging buffer (two per rank). Arrays larger than this are chunked through it. */
  stagingBytes: number;
  /** All-reduce at or below this size is a single step in which every rank folds all inputs. */
  smallAllReduceBytes: number;
  /** Busy-poll before sleeping in futex; "auto" spins only when every local rank can have a core. */
  spinUs: number | "auto";
  /** Longest futex sleep between event-loop turns (bounds how late abort() is noticed). */
  sliceUs: number;
  /** sched_yield(2) loop between spinning and sleeping; "auto" as for spinUs, the other way round. */
  yieldUs: number | "auto";
  /** Largest TCP message between nodes. */
  tcpChunkBytes: number;
}

export const DEFAULT_TUNING: Tuning = {
  stagingBytes: 1 << 20,
  smallAllReduceBytes: 64 << 10,
  spinUs: "auto",
  sliceUs: 2000,
  yieldUs: 0,
  tcpChunkBytes: 4 << 20,
};

const AUTO_SPIN_US = 50;
const AUTO_YIELD_US = 200;

function dtypeOf(x: unknown, what: string): DType {
  if (x instanceof Float32Array) return "float32";
  if (x instanceof Float64Array) return "float64";
  if (x instanceof Int32Array) return "int32";
  const got = x === null ? "null" : typeof x === "object" ? (x as object).constructor?.name ?? "object" : typeof x;
  throw new TypeError(`${what} expects a Float32Array, Float64Array or Int32Array, got ${got}`);
}

function bytesOf(x: NumericArray): Uint8Array {
  return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
}

function checkOp(op: unknown, dtype: DType, what: string): ReduceOp {
  if (!OPS.includes(op as ReduceOp)) {
    throw new TypeError(`${what}: op must be one of ${OPS.map((o) => `"${o}"`).join(", ")}, got ${JSON.stringify(op)}`);
  }
  if (op === "mean" && dtype === "int32") {
    throw new TypeError(`${what}: op "mean" is not supported for Int32Array (it would truncate); use "sum" and divide, or pass a Float32Array or Float64Array`);
  }
  return op as ReduceOp;
}

function checkSpec(spec: CommSpec): void {
  const { rank, worldSize, ranksByNode } = spec;
  if (!Number.isInteger(worldSize) || worldSize < 1) throw new RangeError(`CommSpec.worldSize must be a positive integer, got ${worldSize}`);
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) throw new RangeError(`CommSpec.rank must be an integer in [0, ${worldSize - 1}], got ${rank}`);
  const seen = ranksByNode.flat();
  const sorted = [...seen].sort((a, b) => a - b);
  if (sorted.length !== worldSize || sorted.some((r, i) => r !== i) || ranksByNode.some((n) => n.length === 0)) {
    throw new RangeError(`CommSpec.ranksByNode must split ranks 0..${worldSize - 1} into non-empty nodes, each rank once; got ${JSON.stringify(ranksByNode)}`);
  }
  if (ranksByNode.some((n) => n.some((r, i) => i > 0 && r < n[i - 1]))) {
    throw new RangeError(`CommSpec.ranksByNode lists each node's ranks in rank order; got ${JSON.stringify(ranksByNode)}`);
  }
  if (!Buffer.isBuffer(spec.key) || spec.key.length !== 32) throw new TypeError(`CommSpec.key must be a 32-byte Buffer, got ${spec.key?.length ?? typeof spec.key} bytes`);
  if (!/^[A-Za-z0-9._-]+$/.test(spec.segmentPrefix)) {
    throw new TypeError(`CommSpec.segmentPrefix must be a non-empty name of letters, digits, ".", "_" or "-", got ${JSON.stringify(spec.segmentPrefix)}`);
  }
  if (!(spec.timeoutMs > 0)) throw new RangeError(`CommSpec.timeoutMs must be a positive number of milliseconds, got ${spec.timeoutMs}`);
}

function checkTuning(t: Tuning): void {
  const bad = (what: string, v: unknown, want: string) => new RangeError(`Tuning.${what} must be ${want}, got ${JSON.stringify(v)}`);
  if (!Number.isInteger(t.stagingBytes) || t.stagingBytes < 4096 || t.stagingBytes % 64 !== 0) throw bad("stagingBytes", t.stagingBytes, "a multiple of 64, at least 4096");
  if (!Number.isInteger(t.tcpChunkBytes) || t.tcpChunkBytes < 1) throw bad("tcpChunkBytes", t.tcpChunkBytes, "a positive integer");
  if (!(t.smallAllReduceBytes >= 0)) throw bad("smallAllReduceBytes", t.smallAllReduceBytes, "a number ≥ 0");
  if (!(t.sliceUs >= 1)) throw bad("sliceUs", t.sliceUs, "at least 1");
  for (const k of ["spinUs", "yieldUs"] as const) if (t[k] !== "auto" && !((t[k] as number) >= 0)) throw bad(k, t[k], `"auto" or a number ≥ 0`);
}

interface Topology {
  nodes: number[][];
  myNode: number;
  /** This rank's index within its node. */
  local: number;
  nodeOf: number[];
  localIndexOf: number[];
}

function topology(spec: CommSpec): Topology {
  const nodeOf: number[] = [];
  const localIndexOf: number[] = [];
  spec.ranksByNode.forEach((ranks, n) => ranks.forEach((r, i) => ((nodeOf[r] = n), (localIndexOf[r] = i))));
  return { nodes: spec.ranksByNode, myNode: nodeOf[spec.rank], local: localIndexOf[spec.rank], nodeOf, localIndexOf };
}

interface Published {
  /** TCP endpoint, when there is more than one node. */
  e?: string;
  /** A node leader's staging size: the others map the segment with the leader's layout. */
  s?: number;
  /** Rank 0's algorithm thresholds [smallAllReduceBytes, tcpChunkBytes]: every rank must take the same path. */
  a?: [number, number];
}

export class Communicator {
  readonly rank: number;
  readonly worldSize: number;
  private seq = 0;
  private tail: Promise<unknown> = Promise.resolve();
  private current: OpContext | undefined;
  private broken: Error | undefined;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly spec: CommSpec,
    private readonly topo: Topology,
    /** Shared memory with the other ranks of this node; absent when alone on the node. */
    private readonly group: LocalGroup | undefined,
    /** TCP to ranks on other nodes; absent on a single node. */
    private readonly mesh: RemoteMesh | undefined,
    /** Cross-node data exchange; only on node leaders of multi-node worlds. */
    private readonly leaders: NodeLeaders | undefined,
  ) {
    this.rank = spec.rank;
    this.worldSize = spec.worldSize;
  }

  /**
   * Connects this rank: maps the node's shared memory, binds and connects TCP between nodes. Every rank
   * must call it; it calls `spec.exchange` exactly twice (publish endpoints; confirm mappings).
   */
  static async connect(spec: CommSpec, tuning: Partial<Tuning> = {}): Promise<Communicator> {
    checkSpec(spec);
    const tune: Tuning = { ...DEFAULT_TUNING, ...tuning };
    checkTuning(tune);
    const topo = topology(spec);
    if (spec.worldSize === 1) return new Communicator(spec, topo, undefined, undefined, undefined);

    const localRanks = topo.nodes[topo.myNode];
    const isLeader = topo.local === 0;
    const multiNode = topo.nodes.length > 1;
    let layout = segmentLayout(localRanks.length, tune.stagingBytes);
    const name = segmentName(spec.segmentPrefix, topo.myNode);
    let mapping: Mapping | undefined;
    let mesh: RemoteMesh | undefined;
    let created = false;
    try {
      // The leader creates the segment before the first exchange, so once it returns the name exists.
      if (localRanks.length > 1 && isLeader) {
        mapping = createSegment(name, layout);
        created = true;
      }
      const remoteRanks = [...Array(spec.worldSize).keys()].filter((r) => topo.nodeOf[r] !== topo.myNode);
      if (multiNode) mesh = await RemoteMesh.bind(spec.host, spec.rank, spec.key, remoteRanks);
      const mine: Published = {
        e: mesh?.endpoint,
        s: created ? layout.stagingBytes : undefined,
        a: spec.rank === 0 ? [tune.smallAllReduceBytes, tune.tcpChunkBytes] : undefined,
      };
      const published = (await spec.exchange(JSON.stringify(mine))).map((s) => JSON.parse(s) as Published);
      [tune.smallAllReduceBytes, tune.tcpChunkBytes] = published[0].a ?? [tune.smallAllReduceBytes, tune.tcpChunkBytes];
      if (localRanks.length > 1 && !isLeader) {
        layout = segmentLayout(localRanks.length, published[localRanks[0]].s ?? tune.stagingBytes);
        mapping = openSegment(name, layout);
      }
      // Second exchange: every local rank has mapped the segment, so its name can go now.
      await spec.exchange("mapped");
      if (created) unlinkShared(name);
      created = false;
      if (mesh) {
        const remote = new Map<number, string>();
        published.forEach((p, r) => {
          if (topo.nodeOf[r] !== topo.myNode) {
            if (!p.e) throw new Error(`rank ${r} published no TCP endpoint (got ${JSON.stringify(p)})`);
            remote.set(r, p.e);
          }
        });
        mesh.connect(remote);
      }
    } catch (err) {
      if (created) unlinkShared(name);
      mapping?.unmap();
      await mesh?.close();
      throw err;
    }
    const oversubscribed = localRanks.length > availableParallelism();
    const spinUs = tune.spinUs === "auto" ? (oversubscribed ? 0 : AUTO_SPIN_US) : tune.spinUs;
    const yieldUs = tune.yieldUs === "auto" ? (oversubscribed ? AUTO_YIELD_US : 0) : tune.yieldUs;
    const group = mapping
      ? new LocalGroup(mapping, layout, localRanks, topo.local, { smallAllReduceBytes: tune.smallAllReduceBytes, wait: { spinUs, sliceUs: tune.sliceUs, yieldUs } })
      : undefined;
    const leaders =
      mesh && isLeader
        ? new NodeLeaders(mesh, topo.nodes.map((n) => n[0]), topo.myNode, tune.tcpChunkBytes)
        : undefined;
    return new Communicator(spec, topo, group, mesh, leaders);
  }

  private get multiNode(): boolean {
    return this.topo.nodes.length > 1;
  }

  // ---- the queue -------------------------------------------------------------------------------

  /**
   * Validates synchronously (a bad argument rejects at once and takes no sequence number), then runs
   * `body` after every earlier collective settled.
   */
  private enqueue<R>(kind: Kind, validate: () => Omit<Descriptor, "seq" | "kind">, body: (ctx: OpContext, desc: Descriptor) => Promise<R>): Promise<R> {
    let desc: Descriptor;
    try {
      if (this.closing) throw new Error(`${kind}: the communicator is closed`);
      desc = { kind, seq: this.seq, ...validate() };
    } catch (err) {
      return Promise.reject(err);
    }
    this.seq++;
    const run = async (): Promise<R> => {
      if (this.broken) throw this.broken;
      const ctx = new OpContext(kind, desc.seq, this.spec.timeoutMs, this.worldSize);
      this.current = ctx;
      try {
        return await body(ctx, desc);
      } catch (err) {
        if (ctx.aborted) throw ctx.abortReason;
        if (!(err instanceof CollectiveError && err.recoverable)) {
          this.broken = new CollectiveError(
            `the communicator is unusable since ${kind} #${desc.seq} failed: ${(err as Error).message}`,
            kind,
            desc.seq,
          );
        }
        throw err;
      } finally {
        this.current = undefined;
      }
    };
    const result = this.tail.then(run, run);
    this.tail = result.catch(() => {});
    return result;
  }

  /** Arrival as the first local step of the data phase (single node): the check runs inside it. */
  private arriveWithFirstStep(ctx: OpContext, desc: Descriptor): void {
    ctx.arrival = {
      desc,
      onArrived: (table) => {
        checkAgreement(table, desc);
        ctx.arrived = true;
      },
    };
  }

  /** Arrival as a step of its own: local step plus descriptors to and from every remote rank. Returns the table. */
  private async arrive(ctx: OpContext, desc: Descriptor): Promise<Descriptor[]> {
    const table: Descriptor[] = new Array(this.worldSize);
    table[this.rank] = desc;
    const remoteRanks = this.mesh ? [...Array(this.worldSize).keys()].filter((r) => this.topo.nodeOf[r] !== this.topo.myNode) : [];
    if (this.mesh) {
      const words = new Int32Array(DESCRIPTOR_WORDS);
      encodeDescriptor(desc, words);
      const payload = Buffer.from(words.buffer);
      for (const r of remoteRanks) this.mesh.send(r, desc.seq, "arrive", payload);
      const mesh = this.mesh;
      ctx.missingElsewhere = () => mesh.missing(remoteRanks, desc.seq, "arrive");
    }
    if (this.group) {
      const localRanks = this.group.ranks;
      ctx.arrival = { desc, onArrived: (local) => local.forEach((d, i) => (table[localRanks[i]] = d)) };
      await this.group.step(ctx);
    }
    ctx.missingElsewhere = undefined;
    if (this.mesh) {
      const got = await this.mesh.receiveAll(remoteRanks, desc.seq, "arrive", ctx, (missing) => ctx.timeoutError(missing));
      got.forEach((buf, i) => {
        const words = new Int32Array(DESCRIPTOR_WORDS);
        new Uint8Array(words.buffer).set(buf.subarray(0, DESCRIPTOR_WORDS * 4));
        table[remoteRanks[i]] = decodeDescriptor(words);
      });
    }
    checkAgreement(table, desc);
    ctx.arrived = true;
    return table;
  }

  // ---- collectives -----------------------------------------------------------------------------

  /** Element-wise reduction across ranks, in place; resolves to `x`. "mean" divides the sum by worldSize. */
  allReduce<T extends NumericArray>(x: T, op: ReduceOp = "sum"): Promise<T> {
    return this.enqueue(
      "allReduce",
      () => {
        const dtype = dtypeOf(x, "allReduce");
        return { dtype, count: x.length, op: checkOp(op, dtype, "allReduce"), src: -1 };
      },
      async (ctx, desc) => {
        if (this.worldSize > 1) await this.allReduceBody(x, desc.dtype!, desc.op!, ctx, desc);
        return x;
      },
    );
  }

  private async allReduceBody(x: NumericArray, dtype: DType, op: ReduceOp, ctx: OpContext, desc: Descriptor): Promise<void> {
    const bytes = bytesOf(x);
    const divideBy = op === "mean" ? this.worldSize : 0;
    if (!this.multiNode) {
      this.arriveWithFirstStep(ctx, desc);
      await this.group!.allReduce(bytes, dtype, op, divideBy, ctx);
      return;
    }
    await this.arrive(ctx, desc);
    // Node partial (rank order within the node), then across nodes (node order), then back to the node.
    if (this.group) await this.group.allReduce(bytes, dtype, op, 0, ctx);
    if (this.leaders) await this.leaders.allReduce(bytes, dtype, op, divideBy, ctx);
    if (this.group) await this.group.broadcast(bytes, 0, ctx);
  }

  /** Copies `src`'s `x` into every rank's `x`, in place; resolves to `x`. */
  broadcast<T extends NumericArray>(x: T, src = 0): Promise<T> {
    return this.enqueue(
      "broadcast",
      () => ({ dtype: dtypeOf(x, "broadcast"), count: x.length, op: null, src: this.checkSrc(src, "broadcast") }),
      async (ctx, desc) => {
        if (this.worldSize === 1) return x;
        const bytes = bytesOf(x);
        const { nodeOf, localIndexOf, myNode } = this.topo;
        if (!this.multiNode) {
          this.arriveWithFirstStep(ctx, desc);
          await this.group!.broadcast(bytes, src, ctx);
          return x;
        }
        await this.arrive(ctx, desc);
        const srcNode = nodeOf[src];
        if (myNode === srcNode && this.group) await this.group.broadcast(bytes, localIndexOf[src], ctx);
        if (this.leaders) await this.leaders.broadcast(bytes, srcNode, ctx);
        if (myNode !== srcNode && this.group) await this.group.broadcast(bytes, 0, ctx);
        return x;
      },
    );
  }

  /** Every rank's `x`, concatenated in rank order, in a new array of the same type. */
  allGather<T extends NumericArray>(x: T): Promise<T> {
    return this.enqueue(
      "allGather",
      () => ({ dtype: dtypeOf(x, "allGather"), count: x.length, op: null, src: -1 }),
      async (ctx, desc) => {
        const out = new (x.constructor as new (n: number) => T)(x.length * this.worldSize);
        const outBytes = bytesOf(out);
        const nb = x.byteLength;
        if (this.worldSize === 1) {
          out.set(x);
          return out;
        }
        if (!this.multiNode) {
          this.arriveWithFirstStep(ctx, desc);
          await this.group!.allGather(bytesOf(x), outBytes, (r) => r * nb, ctx);
          return out;
        }
        await this.arrive(ctx, desc);
        const localRanks = this.topo.nodes[this.topo.myNode];
        // The node's block, local ranks in rank order.
        const block = new Uint8Array(localRanks.length * nb);
        if (this.group) await this.group.allGather(bytesOf(x), block, (i) => i * nb, ctx);
        else block.set(bytesOf(x));
        if (this.leaders) {
          const blocks = await this.leaders.allGather(block, this.topo.nodes.map((n) => n.length * nb), ctx);
          blocks.forEach((b, node) => this.topo.nodes[node].forEach((r, i) => outBytes.set(b.subarray(i * nb, (i + 1) * nb), r * nb)));
        }
        if (this.group) await this.group.broadcast(outBytes, 0, ctx);
        return out;
      },
    );
  }

  /** Reduces `x` across ranks and returns this rank's slice (x.length / worldSize elements) in a new array. */
  reduceScatter<T extends NumericArray>(x: T, op: ReduceOp = "sum"): Promise<T> {
    return this.enqueue(
      "reduceScatter",
      () => {
        const dtype = dtypeOf(x, "reduceScatter");
        checkOp(op, dtype, "reduceScatter");
        if (x.length % this.worldSize !== 0) {
          const up = Math.ceil(x.length / this.worldSize) * this.worldSize;
          throw new RangeError(`reduceScatter: x.length (${x.length}) must be divisible by worldSize (${this.worldSize}); pad it to ${up} elements`);
        }
        return { dtype, count: x.length, op, src: -1 };
      },
      async (ctx, desc) => {
        const m = x.length / this.worldSize;
        const ctor = x.constructor as new (n: number) => T;
        if (this.worldSize === 1) {
          const out = new ctor(m);
          out.set(x);
          return out;
        }
        if (!this.multiNode) {
          const out = new ctor(m);
          this.arriveWithFirstStep(ctx, desc);
          await this.group!.reduceScatter(bytesOf(x), bytesOf(out), desc.dtype!, op, op === "mean" ? this.worldSize : 0, ctx);
          return out;
        }
        // Across nodes: a full all-reduce of a copy, then this rank's slice. Simple; not bandwidth-optimal.
        const all = x.slice() as T;
        await this.allReduceBody(all, desc.dtype!, op, ctx, desc);
        return all.slice(this.rank * m, (this.rank + 1) * m) as T;
      },
    );
  }

  /** `src`'s value, structured-cloned (v8.serialize) to every rank. */
  broadcastObject<V>(value: V, src = 0): Promise<V> {
    let payload: Buffer;
    return this.enqueue(
      "broadcastObject",
      () => {
        this.checkSrc(src, "broadcastObject");
        payload = this.rank === src ? serialize(value) : Buffer.alloc(0);
        return { dtype: null, count: payload.length, op: null, src };
      },
      async (ctx, desc) => {
        const all = await this.gatherBytes(payload, ctx, desc);
        return deserialize(all[src]) as V;
      },
    );
  }

  /** Every rank's value, structured-cloned, in rank order. */
  gatherObject<V>(value: V): Promise<V[]> {
    let payload: Buffer;
    return this.enqueue(
      "gatherObject",
      () => {
        payload = serialize(value);
        return { dtype: null, count: payload.length, op: null, src: -1 };
      },
      async (ctx, desc) => (await this.gatherBytes(payload, ctx, desc)).map((b) => deserialize(b) as V),
    );
  }

  /** Variable-length all-gather of byte strings; sizes come from the arrival's descriptors. */
  private async gatherBytes(mine: Uint8Array, ctx: OpContext, desc: Descriptor): Promise<Uint8Array[]> {
    if (this.worldSize === 1) return [mine];
    const table = await this.arrive(ctx, desc);
    const lengths = table.map((d) => d.count);
    const localRanks = this.topo.nodes[this.topo.myNode];
    const localBufs = this.group ? await this.group.gatherBytes(mine, localRanks.map((r) => lengths[r]), ctx) : [mine];
    if (!this.multiNode) return localBufs;
    const all: Uint8Array[] = new Array(this.worldSize);
    const total = lengths.reduce((a, b) => a + b, 0);
    const everything = new Uint8Array(total);
    const offsets = lengths.map((_, r) => lengths.slice(0, r).reduce((a, b) => a + b, 0));
    if (this.leaders) {
      const nodeBytes = (n: number) => this.topo.nodes[n].reduce((a, r) => a + lengths[r], 0);
      const block = new Uint8Array(nodeBytes(this.topo.myNode));
      let at = 0;
      for (const b of localBufs) block.set(b, (at += b.length) - b.length);
      const blocks = await this.leaders.allGather(block, this.topo.nodes.map((_, n) => nodeBytes(n)), ctx);
      blocks.forEach((b, n) => {
        let off = 0;
        for (const r of this.topo.nodes[n]) {
          everything.set(b.subarray(off, off + lengths[r]), offsets[r]);
          off += lengths[r];
        }
      });
    }
    if (this.group) await this.group.broadcast(everything, 0, ctx);
    for (let r = 0; r < this.worldSize; r++) all[r] = everything.subarray(offsets[r], offsets[r] + lengths[r]);
    return all;
  }

  /** Resolves once every rank has called barrier (the same number of collectives before it). */
  barrier(): Promise<void> {
    return this.enqueue(
      "barrier",
      () => ({ dtype: null, count: 0, op: null, src: -1 }),
      async (ctx, desc) => {
        if (this.worldSize === 1) return;
        if (!this.multiNode) {
          this.arriveWithFirstStep(ctx, desc);
          await this.group!.step(ctx);
          return;
        }
        await this.arrive(ctx, desc);
      },
    );
  }

  private checkSrc(src: unknown, what: string): number {
    if (!Number.isInteger(src) || (src as number) < 0 || (src as number) >= this.worldSize) {
      throw new RangeError(`${what}: src must be an integer rank in [0, ${this.worldSize - 1}], got ${JSON.stringify(src)}`);
    }
    return src as number;
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  /**
   * The launcher calls this when it learns a peer died: the pending collective and every later one
   * reject with `reason` (a waiting rank notices within one futex slice, ~2 ms).
   */
  abort(reason: Error): void {
    if (!this.broken) this.broken = reason;
    this.current?.abort(reason);
  }

  /** Aborts what is in flight, closes sockets and unmaps shared memory; idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.current) this.abort(new Error(`the communicator was closed while ${this.current.kind} #${this.current.seq} was in flight`));
      await this.tail;
      this.group?.close();
      await this.mesh?.close();
    })();
    return this.closing;
  }
}

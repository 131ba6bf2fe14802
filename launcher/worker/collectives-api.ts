// The collectives a training function calls: allReduce, broadcast, allGather, reduceScatter,
// broadcastObject, gatherObject, and the barrier (waitForEveryone). In a worker they run over the
// rank-to-rank data plane (launcher/collectives: shared memory on a node, signed ZeroMQ TCP between
// nodes), connected on first use; the agent is only on the control plane (the endpoints' exchange at
// connect, the barrier, and the word that a peer died). Outside a launch they are the identity on
// one process, as Accelerate's single-process state is.
import path from "path";
import { Communicator, CollectiveError, rankList, type NumericArray, type ReduceOp } from "../collectives";
import { ExchangeTimeout, type WorkerChannel } from "../channel";
import { ENV } from "../contract";

export type { NumericArray, ReduceOp };
export { CollectiveError };

let channel: WorkerChannel | null = null;
let connecting: Promise<Communicator> | null = null;
let communicator: Communicator | null = null;
/** Set when the agent said a peer died: every later collective fails at once with it. */
let peerFailure: Error | null = null;
let inFlight = 0;

/** Called by worker-main with the worker's channel to the agent. */
export function attachWorkerChannel(c: WorkerChannel | null): void {
  channel = c;
  if (!c) return;
  c.onAgentMessage = (m) => {
    if (m.type !== "peer-failed") return;
    peerFailure ??= new CollectiveError(`${m.reason}; collectives cannot complete without it.`, "collective", -1, [m.rank]);
    communicator?.abort(peerFailure);
  };
}

/** Barriers and collectives still waiting: ZeroMQ's sockets and shared memory are invisible to Node's active-resource list. */
export function pendingCollectives(): number {
  return (channel?.pendingExchanges ?? 0) + inFlight;
}

/** The key of this launch's data plane, which worker-main reads from the lifeline. */
let collectiveKey: Buffer | null = null;

export function setCollectiveKey(key: Buffer): void {
  collectiveKey = key;
}

/** Closes the data plane (sockets, shared memory); worker-main calls it before the worker exits. */
export async function closeCollectives(): Promise<void> {
  const c = communicator ?? (connecting ? await connecting.catch(() => null) : null);
  communicator = null;
  connecting = null;
  await c?.close();
}

function setupFromEnv(): { ranksByNode: number[][]; host: string; segmentPrefix: string; key: Buffer; timeoutMs: number } {
  const env = process.env;
  const missing: string[] = [ENV.ranksByNode, ENV.dataHost, ENV.segmentPrefix, ENV.collectiveTimeoutMs].filter((k) => !env[k]);
  if (!collectiveKey) missing.push("the collectives key (fd 3)");
  if (missing.length > 0) throw new Error(`this worker was started without its collectives setup (${missing.join(", ")} missing)`);
  return {
    ranksByNode: JSON.parse(env[ENV.ranksByNode]!) as number[][],
    host: env[ENV.dataHost]!,
    segmentPrefix: env[ENV.segmentPrefix]!,
    key: collectiveKey!,
    timeoutMs: Number(env[ENV.collectiveTimeoutMs]),
  };
}

function communicatorFor(c: WorkerChannel): Promise<Communicator> {
  connecting ??= (async () => {
    const setup = setupFromEnv();
    const comm = await Communicator.connect({
      rank: Number(process.env.RANK),
      worldSize: Number(process.env.WORLD_SIZE),
      ranksByNode: setup.ranksByNode,
      runDir: path.dirname(process.env[ENV.payload]!),
      segmentPrefix: setup.segmentPrefix,
      key: setup.key,
      host: setup.host,
      exchange: (mine) => c.exchange("collectives", mine),
      timeoutMs: setup.timeoutMs,
    });
    if (peerFailure) comm.abort(peerFailure);
    communicator = comm;
    return comm;
  })();
  return connecting;
}

/** Runs one collective on the data plane, or `alone` on a single process. */
async function collective<T>(name: string, run: (comm: Communicator) => Promise<T>, alone: () => T): Promise<T> {
  if (!channel || Number(process.env.WORLD_SIZE ?? 1) === 1) return alone();
  if (peerFailure) throw peerFailure;
  inFlight++;
  try {
    let comm: Communicator;
    try {
      comm = await communicatorFor(channel);
    } catch (err) {
      // The first collective connects every rank; a rank that never calls one holds the others here.
      if (err instanceof ExchangeTimeout) {
        throw new CollectiveError(
          `${name} #0 timed out after ${Math.round(err.waitedMs)} ms: ${rankList(err.missing)} did not arrive ` +
            `(the first collective also connects the ranks; --collective_timeout sets the limit).`,
          name, 0, err.missing,
        );
      }
      throw err;
    }
    return await run(comm);
  } finally {
    inFlight--;
  }
}

const TYPED = [Float32Array, Float64Array, Int32Array];
const OPS: readonly ReduceOp[] = ["sum", "mean", "max", "min", "product"];

/** The single-process checks the data plane does too, so a mistake shows up on one process already. */
function checkArray(x: unknown, what: string): asserts x is NumericArray {
  if (!TYPED.some((T) => x instanceof T)) {
    throw new TypeError(`${what} needs a Float32Array, Float64Array or Int32Array, got ${x === null ? "null" : typeof x === "object" ? (x as object).constructor?.name : typeof x}.`);
  }
}

function checkOp(x: NumericArray, op: ReduceOp, what: string): void {
  if (!OPS.includes(op)) throw new RangeError(`${what}: op must be one of ${OPS.join(", ")}, got ${JSON.stringify(op)}.`);
  if (op === "mean" && x instanceof Int32Array) throw new TypeError(`${what}: "mean" of an Int32Array would not be an integer; use "sum" and divide, or a Float32Array.`);
}

function checkSrc(src: number, what: string): void {
  const worldSize = Number(process.env.WORLD_SIZE ?? 1);
  if (!Number.isInteger(src) || src < 0 || src >= worldSize) throw new RangeError(`${what}: src must be a rank from 0 to ${worldSize - 1}, got ${src}.`);
}

/** Reduces `x` in place across all ranks (sum, mean, max, min, product) and resolves to `x`. */
export async function allReduce<T extends NumericArray>(x: T, op: ReduceOp = "sum"): Promise<T> {
  checkArray(x, "allReduce");
  checkOp(x, op, "allReduce");
  return collective("allReduce", (c) => c.allReduce(x, op), () => x);
}

/** Every rank's `x` becomes rank `src`'s, in place; resolves to `x`. */
export async function broadcast<T extends NumericArray>(x: T, src = 0): Promise<T> {
  checkArray(x, "broadcast");
  checkSrc(src, "broadcast");
  return collective("broadcast", (c) => c.broadcast(x, src), () => x);
}

/** A new array of x's type, worldSize × x.length long: every rank's `x`, rank-ordered. */
export async function allGather<T extends NumericArray>(x: T): Promise<T> {
  checkArray(x, "allGather");
  return collective("allGather", (c) => c.allGather(x), () => x.slice() as T);
}

/** Reduces across ranks and returns this rank's slice (x.length / worldSize long). */
export async function reduceScatter<T extends NumericArray>(x: T, op: ReduceOp = "sum"): Promise<T> {
  checkArray(x, "reduceScatter");
  checkOp(x, op, "reduceScatter");
  const worldSize = Number(process.env.WORLD_SIZE ?? 1);
  if (x.length % worldSize !== 0) {
    throw new RangeError(`reduceScatter: the length (${x.length}) must be divisible by the number of processes (${worldSize}); pad the array to ${Math.ceil(x.length / worldSize) * worldSize}.`);
  }
  return collective("reduceScatter", (c) => c.reduceScatter(x, op), () => x.slice() as T);
}

/** Rank `src`'s value on every rank (structured clone). */
export async function broadcastObject<V>(value: V, src = 0): Promise<V> {
  checkSrc(src, "broadcastObject");
  return collective("broadcastObject", (c) => c.broadcastObject(value, src), () => structuredClone(value));
}

/** Every rank's value, rank-ordered, on every rank (structured clone; Accelerate's gather_object). */
export async function gatherObject<V>(value: V): Promise<V[]> {
  return collective("gatherObject", (c) => c.gatherObject(value), () => [structuredClone(value)]);
}

/** A barrier: resolves once every rank of the launch has called it (Accelerate's wait_for_everyone). */
export async function waitForEveryone(): Promise<void> {
  if (!channel) return; // a single process is already everyone
  try {
    await channel.exchange("barrier", "");
  } catch (err) {
    if (err instanceof ExchangeTimeout) {
      throw new CollectiveError(`waitForEveryone timed out after ${Math.round(err.waitedMs)} ms: ${rankList(err.missing)} did not arrive (--collective_timeout sets the limit).`, "waitForEveryone", -1, err.missing);
    }
    throw err;
  }
}

// The worker entry point: what every rank's Node process runs. Steps: hold the lifeline, open the
// log channel, replay the session (silently), run the body, report, wait for the agent's ack, exit.
// A warm worker (warm-worker.ts) runs the same steps once its launch has been handed to it.
import { writeSync } from "fs";
import { Worker } from "worker_threads";
import path from "path";
import { StringDecoder } from "string_decoder";
import { createDisplayFunction, ENV, PRIOR_OUTCOMES, readPayload, REPLAYING, StdinNotAllowedError, traceMark, type ErrorPayload, type LaunchKeys } from "../contract";
import { WorkerChannel } from "../channel";
import { emitDisplay, setDisplaySink } from "./worker-display";
import { createCellRuntime, nextReplayAnswer, runCell, type CellRuntime } from "./replay";
import { deserialize, serialize } from "v8";
import { attachWorkerChannel, closeCollectives, pendingCollectives, setCollectiveKey } from "./collectives-api";
import { resolveOwnPackage } from "./own-package";

/** fd 3 is a pipe whose other end only the agent holds. */
const LIFELINE_FD = 3;

/**
 * If the agent (the kernel) dies, even by SIGKILL, its end of the lifeline closes. A thread watching
 * it kills this process, even while the main thread is stuck in a synchronous loop, so no worker
 * outlives its launch. The thread polls the socket through libuv rather than blocking in read():
 * a thread blocked in a syscall cannot be stopped, and process.exit() would wait for it forever.
 *
 * The lifeline also carries the launch's keys (one JSON line, written by the agent when it hands
 * the worker its rank): unlike the environment, a pipe is not readable in /proc/PID/environ.
 */
export function holdLifeline(launchDir: string | null): Lifeline {
  // The agent that would remove the launch folder is gone: the first worker to notice removes it.
  // A warm worker learns its launch folder only when it is given a launch.
  const watchdog = new Worker(
    `const net = require("net");
     const fs = require("fs");
     const { workerData, parentPort } = require("worker_threads");
     let launchDir = workerData.launchDir;
     let token = null;
     parentPort.on("message", (m) => { launchDir = m.dir; token = m.token; });
     parentPort.unref();
     const lifeline = new net.Socket({ fd: ${LIFELINE_FD}, readable: true, writable: false });
     // What the ranks started ends too: every process whose environment holds the group's token
     // (the agent's search in group/descendants.ts, repeated here, where that module is not loaded).
     const killMarked = () => {
       if (!token) return;
       const entry = Buffer.from("${ENV.segmentPrefix}=" + token);
       for (const name of fs.readdirSync("/proc")) {
         if (!/^\\d+$/.test(name) || Number(name) === process.pid) continue;
         try {
           const env = fs.readFileSync("/proc/" + name + "/environ");
           const at = env.indexOf(entry);
           const end = at + entry.length;
           if (at >= 0 && (at === 0 || env[at - 1] === 0) && (end === env.length || env[end] === 0)) process.kill(Number(name), "SIGKILL");
         } catch {}
       }
     };
     const die = () => {
       try { if (launchDir) fs.rmSync(launchDir, { recursive: true, force: true }); } catch {}
       try { killMarked(); } catch {}
       process.kill(process.pid, "SIGKILL");
     };
     let line = "";
     const onData = (chunk) => {
       line += chunk.toString("utf8");
       const end = line.indexOf("\\n");
       if (end < 0) return;
       lifeline.off("data", onData).on("data", () => {});
       parentPort.postMessage(line.slice(0, end));
       line = "";
     };
     lifeline.on("data", onData).on("end", die).on("close", die).on("error", die);`,
    { eval: true, workerData: { launchDir } },
  );
  watchdog.unref();
  let keysArrived: (keys: LaunchKeys) => void = () => {};
  const keys = new Promise<LaunchKeys>((resolve) => (keysArrived = resolve));
  watchdog.once("message", (line: string) => keysArrived(JSON.parse(line) as LaunchKeys));
  return {
    setLaunch: (dir, token) => watchdog.postMessage({ dir, token }),
    keys: async () => {
      // Waiting for the agent's line must keep this process alive (the watchdog is unref'd).
      watchdog.ref();
      try {
        return await keys;
      } finally {
        watchdog.unref();
      }
    },
  };
}

export interface Lifeline {
  /** The launch folder to remove and the group token to end, should the agent die. */
  setLaunch(dir: string, token: string | undefined): void;
  /** The launch's keys, once the agent wrote them to the lifeline. */
  keys(): Promise<LaunchKeys>;
}

/**
 * A rank's own output travels on the log channel in batches; a child process that inherits its
 * stdout/stderr writes straight to the rank's pipes. So that "A1, then a child's B2, then C3" arrive
 * in that order, the batch not yet sent goes to the pipe, synchronously, before any child starts.
 * (What a child writes while the rank keeps writing is two processes writing at once: no order.)
 */
function keepOrderWithChildProcesses(channel: WorkerChannel): void {
  const childProcess = require("child_process") as Record<string, unknown>;
  const toPipe = (name: "stdout" | "stderr", text: string) => {
    const bytes = Buffer.from(text, "utf8");
    for (let done = 0; done < bytes.length; ) {
      try {
        done += writeSync(name === "stdout" ? 1 : 2, bytes, done);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EAGAIN") return; // the agent is gone
      }
    }
  };
  for (const name of ["spawn", "spawnSync", "exec", "execSync", "execFile", "execFileSync", "fork"]) {
    const original = childProcess[name] as (...args: unknown[]) => unknown;
    const wrapped = function (this: unknown, ...args: unknown[]) {
      channel.handOff(toPipe);
      return original.apply(this, args);
    };
    // util.promisify(exec) relies on exec's own properties (promisify.custom): keep them all.
    Object.defineProperties(wrapped, Object.getOwnPropertyDescriptors(original));
    childProcess[name] = wrapped;
  }
}

function errorPayload(err: unknown, phase: ErrorPayload["phase"], cell?: number): ErrorPayload {
  if (err instanceof Error) {
    return { ename: err.name || "Error", evalue: err.message, stack: err.stack ?? `${err.name}: ${err.message}`, phase, cell };
  }
  return { ename: "Error", evalue: String(err), stack: `Uncaught ${String(err)}`, phase, cell };
}

/** Runs this worker's rank: the environment (process.env) already says which launch and rank. */
/** A warm worker's pre-replayed session: the runtime its cells ran in, and how many ran. */
export interface PreReplayed {
  runtime: CellRuntime;
  replayed: number;
}

export async function main(preReplayed?: PreReplayed): Promise<void> {
  resolveOwnPackage();
  const lifeline = adoptedLifeline ?? holdLifeline(null);
  lifeline.setLaunch(path.dirname(process.env[ENV.payload]!), process.env[ENV.segmentPrefix]);
  const rank = Number(process.env.RANK);
  traceMark("worker: main");
  const keys = await lifeline.keys();
  traceMark("worker: keys");
  const channel = new WorkerChannel(process.env[ENV.endpoint]!, Buffer.from(keys.channel, "hex"), `rank${rank}-pid${process.pid}`);
  setCollectiveKey(Buffer.from(keys.collectives, "hex"));
  channel.send({ type: "hello", rank, pid: process.pid });
  attachWorkerChannel(channel);

  // Output of the user's code goes through the channel; native code writing to fd 1/2 and Node's
  // own crash messages still reach the agent through the process's stdout/stderr pipes.
  let silent = true;
  for (const name of ["stdout", "stderr"] as const) {
    const stream = process[name];
    // One decoder per stream: a character written as bytes across two writes (a '€' in two chunks)
    // stays one character instead of two replacement marks.
    const decoder = new StringDecoder("utf8");
    (stream as unknown as { write: unknown }).write = (chunk: string | Uint8Array, encoding?: unknown, cb?: unknown) => {
      const text = typeof chunk === "string" ? decoder.end() + chunk : decoder.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      if (!silent && text) channel.write(name, text);
      const callback = typeof encoding === "function" ? encoding : cb;
      if (typeof callback === "function") process.nextTick(callback as () => void);
      return true;
    };
  }

  keepOrderWithChildProcesses(channel);

  let exitCode = 0;
  const fail = async (payload: ErrorPayload) => {
    channel.send({ type: "error", error: payload });
    exitCode = 1;
  };
  // An error thrown later from a timer or an unawaited promise still fails the rank.
  let finishing: Promise<void> | null = null;
  const reallyExit = process.exit.bind(process);
  const finish = () => (finishing ??= (async () => {
    traceMark("worker: finishing");
    await closeCollectives().catch(() => {}); // its shared memory and sockets must not outlive the rank
    await channel.finish();
    traceMark("worker: acked, exiting");
    reallyExit(exitCode || Number(process.exitCode ?? 0));
  })());
  // The user's process.exit(code) must not drop output still queued for the agent.
  process.exit = ((code?: number | string | null) => {
    exitCode = Number(code ?? process.exitCode ?? 0);
    void finish();
    return new Promise(() => {}) as never;
  }) as typeof process.exit;
  process.on("uncaughtException", (err) => {
    void fail(errorPayload(err, "body")).then(finish);
  });
  process.on("unhandledRejection", (err) => {
    void fail(errorPayload(err, "body")).then(finish);
  });

  traceMark("worker: hello sent");
  installNotebookGlobals();
  const payload = readPayload(process.env[ENV.payload]!);
  traceMark("worker: payload read");
  const runtime = preReplayed?.runtime ?? createCellRuntime(payload);
  setDisplaySink(() => {});
  if (payload.priorOutcomesV8) (globalThis as Record<symbol, unknown>)[PRIOR_OUTCOMES] = deserialize(Buffer.from(payload.priorOutcomesV8, "base64"));
  (globalThis as Record<symbol, unknown>)[REPLAYING] = true;
  for (const cell of payload.replay.slice(preReplayed?.replayed ?? 0)) {
    try {
      await runCell(runtime, cell, false);
    } catch (err) {
      await fail(errorPayload(err, "replay", cell.executionCount));
      return finish();
    }
  }
  (globalThis as Record<symbol, unknown>)[REPLAYING] = false;
  channel.send({ type: "body" });
  traceMark("worker: replayed");
  const baseline = await resourceBaseline(() => channel.flushStreams());
  silent = false;
  setDisplaySink((display, update) => channel.send({ type: "display", update, display }));
  try {
    const value = await runCell(runtime, payload.body, true, payload.argsV8);
    if (payload.argsV8 !== undefined) {
      let bytes: Buffer;
      try {
        bytes = serialize(value);
      } catch (err) {
        throw new TypeError(`rank ${rank}'s return value cannot be sent back (it must be structured-cloneable): ${(err as Error).message}`);
      }
      channel.send({ type: "result" }, bytes);
    }
  } catch (err) {
    await fail(errorPayload(err, "body"));
    return finish();
  }
  // A cell body or script ends as a Node script does: when nothing is left to run (timers, sockets,
  // pending I/O). A launched function ends when it returns, as a multiprocessing target does.
  traceMark("worker: body returned");
  if (payload.argsV8 === undefined) await untilEventLoopIdle(baseline, () => channel.flushStreams());
  return finish();
}

type ResourceCounts = Map<string, number>;

function countResources(): ResourceCounts {
  const counts = new Map<string, number>();
  for (const t of process.getActiveResourcesInfo()) counts.set(t, (counts.get(t) ?? 0) + 1);
  return counts;
}

/** What keeps the worker alive before user code runs (its stdio pipes): not the user's work. */
async function resourceBaseline(flush: () => void): Promise<ResourceCounts> {
  // Counted after the timer's callback has returned, exactly as untilEventLoopIdle counts.
  await new Promise((resolve) => setTimeout(resolve, 0));
  flush();
  return countResources();
}

/** Resolves once nothing but the baseline keeps the event loop alive. */
async function untilEventLoopIdle(baseline: ResourceCounts, flush: () => void): Promise<void> {
  // Look soon (most bodies leave nothing behind), then every 10 ms: a launch's end is not delayed
  // by a fixed poll, and a long-running body costs no more checks than before.
  for (let delayMs = 1; ; delayMs = Math.min(10, delayMs * 2)) {
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    flush();
    const now = countResources();
    if (pendingCollectives() === 0 && [...now].every(([type, n]) => n <= (baseline.get(type) ?? 0))) return;
  }
}

/** display() shows through the launch cell, as in the kernel. */
export function installNotebookGlobals(): void {
  const globals = globalThis as Record<string, unknown>;
  globals.display = createDisplayFunction(emitDisplay);
  // A replayed cell gets the answers it got in the kernel; a body has no one to ask.
  globals.prompt = (): string | null => {
    const answer = nextReplayAnswer();
    if (answer === undefined) throw new StdinNotAllowedError("prompt", "launch");
    return answer;
  };
  globals.input = async (): Promise<string> => {
    const answer = nextReplayAnswer();
    if (answer === undefined) throw new StdinNotAllowedError("input", "launch");
    return answer;
  };
}

/** Set by a warm worker, which holds its lifeline from its start. */
let adoptedLifeline: Lifeline | null = null;

export function adoptLifeline(lifeline: Lifeline): void {
  adoptedLifeline = lifeline;
}

if (require.main === module) void main();

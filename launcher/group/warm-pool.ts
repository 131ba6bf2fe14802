// The warm pool: worker processes started before a launch asks for them (Node up, tslaunch's
// worker code and zeromq loaded, lifeline held, idle), so a launch only hands each its rank instead
// of paying a Node start-up per rank. The kernel keeps one (kernel/launch/kernel-launch-host.ts).
// Rules it never breaks:
// - a warm worker holds no device: it loads nothing but tslaunch's own code, and takes its
//   environment (CUDA_VISIBLE_DEVICES included) before any user code runs;
// - it is used by one launch at most, then exits as every worker does: no state crosses launches;
// - it never outlives the kernel: it holds the same lifeline as any worker (group/stop.ts);
// - it costs no CPU while idle (it waits on its IPC channel), and refills happen only when the
//   kernel asks (when idle), at low priority where the priority can be raised back on use.
import { spawn, type ChildProcess } from "child_process";
import os from "os";
import path from "path";
import type { WarmAssignment } from "../contract";

const WARM_WORKER = path.join(__dirname, "..", "worker", "warm-worker.js");
const WORKER_MAIN = path.join(__dirname, "..", "worker", "worker-main.js");
/** What one idle warm worker costs in memory (RSS measured: 63 MB, partly shared pages of the Node binary). */
export const WARM_WORKER_BYTES = 64 * 1024 * 1024;
/** Nice value of a warm worker while it starts; set back to the kernel's when a launch takes it. */
const WARM_NICE = 10;

export interface WarmPoolOptions {
  /** At most this many warm workers (TSLAUNCH_WARM_POOL); 0: no pool. */
  max?: number;
  /**
   * Idle warm workers do not keep this process alive (a plain script's pool: the script exits when
   * its own work is done, and its warm workers with it, through their lifeline).
   */
  unref?: boolean;
}

interface WarmWorker {
  child: ChildProcess;
  /** How the process was started: only a launch that would start its workers the same way may take it. */
  signature: string;
  gone: boolean;
}

/** What decides how a Node worker starts (a warm worker started otherwise would not be the same). */
export function startSignature(execArgv: string[], env: NodeJS.ProcessEnv = process.env): string {
  const startup = Object.entries(env).filter(([k]) => /^(NODE_|UV_)/.test(k) && k !== "NODE_CHANNEL_FD").sort();
  return JSON.stringify([process.execPath, execArgv, startup]);
}

/** TSLAUNCH_WARM_POOL: "off"/"0" disables the pool, a number caps it; anything else is an error. */
export function warmPoolLimit(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.TSLAUNCH_WARM_POOL?.trim().toLowerCase();
  // By default: no more than 2 per core and at most a quarter of the free memory.
  const auto = Math.max(0, Math.min(4 * os.cpus().length, 16, Math.floor(os.freemem() / 4 / WARM_WORKER_BYTES)));
  if (raw === undefined || raw === "" || raw === "auto" || raw === "on") return auto;
  if (raw === "off" || raw === "no" || raw === "false") return 0;
  if (/^\d+$/.test(raw)) return Number(raw);
  throw new Error(`TSLAUNCH_WARM_POOL must be off, auto or a number of warm workers (0 is off), got ${JSON.stringify(env.TSLAUNCH_WARM_POOL)}`);
}

/**
 * The pool a host keeps, sized by TSLAUNCH_WARM_POOL; undefined when it is off. A malformed value
 * turns the pool off with one line on stderr (a launch must not fail over its warm-up).
 */
export function createWarmPool(options: Omit<WarmPoolOptions, "max"> = {}, logPrefix = "[tslaunch]"): WarmPool | undefined {
  let max = 0;
  try {
    max = warmPoolLimit();
  } catch (err) {
    process.stderr.write(`${logPrefix} ${(err as Error).message}; the warm pool is off.\n`);
  }
  return max > 0 ? new WarmPool({ ...options, max }) : undefined;
}

export class WarmPool {
  private readonly idle: WarmWorker[] = [];
  /** Lowering a priority is always allowed, raising it back only to root: renice only then. */
  private canRenice = process.getuid?.() === 0;
  private disposed = false;

  constructor(private readonly options: WarmPoolOptions = {}) {}

  get size(): number {
    return this.idle.filter((w) => !w.gone).length;
  }

  get pids(): number[] {
    return this.idle.flatMap((w) => (w.gone || !w.child.pid ? [] : [w.child.pid]));
  }

  /** Starts warm workers until `count` are idle (capped by the pool's maximum). */
  fill(count: number, execArgv: string[] = [], cwd = process.cwd()): void {
    const max = this.options.max ?? warmPoolLimit();
    const want = Math.min(count, max);
    const signature = startSignature(execArgv);
    // Workers started another way are of no use to the next launch: let them go.
    for (const w of this.idle.splice(0)) if (w.signature === signature && !w.gone) this.idle.push(w); else this.end(w);
    while (!this.disposed && this.size < want) this.idle.push(this.start(signature, execArgv, cwd));
  }

  /**
   * Takes a warm worker and gives it its launch (the complete environment a fresh rank would get).
   * Undefined when none fits: the caller spawns as usual.
   */
  take(execArgv: string[], assignment: { env: NodeJS.ProcessEnv; cwd: string }): ChildProcess | undefined {
    const signature = startSignature(execArgv, assignment.env);
    for (;;) {
      const w = this.idle.shift();
      if (!w) return undefined;
      if (w.gone || w.signature !== signature || !w.child.connected) {
        this.end(w);
        continue;
      }
      w.child.removeAllListeners("exit");
      this.restorePriority(w.child);
      if (this.options.unref) refHandles(w.child, true); // a running rank keeps its launcher alive
      const message: WarmAssignment = {
        type: "tslaunch-assignment",
        env: Object.fromEntries(Object.entries(assignment.env).filter((e): e is [string, string] => e[1] !== undefined)),
        cwd: assignment.cwd,
        title: [process.execPath, ...execArgv, WORKER_MAIN].join(" "),
      };
      w.child.send(message);
      return w.child;
    }
  }

  /** Ends every idle warm worker (kernel shutdown, restart, exit). */
  dispose(): void {
    this.disposed = true;
    for (const w of this.idle.splice(0)) this.end(w);
  }

  private start(signature: string, execArgv: string[], cwd: string): WarmWorker {
    // Not detached, and fd 3 is the lifeline, exactly as a freshly spawned worker (worker-group.ts).
    const child = spawn(process.execPath, [...execArgv, WARM_WORKER], { env: process.env, cwd, stdio: ["ignore", "pipe", "pipe", "pipe", "ipc"] });
    const w: WarmWorker = { child, signature, gone: false };
    child.once("exit", () => (w.gone = true));
    child.once("error", () => (w.gone = true));
    if (this.options.unref) refHandles(child, false);
    if (child.pid && this.canRenice) {
      try {
        os.setPriority(child.pid, Math.max(os.getPriority(), WARM_NICE));
      } catch {
        this.canRenice = false;
      }
    }
    return w;
  }

  /** A launch's rank runs at the kernel's priority; where that cannot be restored, never lower it again. */
  private restorePriority(child: ChildProcess): void {
    if (!child.pid) return;
    try {
      if (os.getPriority(child.pid) !== os.getPriority()) os.setPriority(child.pid, os.getPriority());
    } catch {
      this.canRenice = false;
    }
  }

  private end(w: WarmWorker): void {
    w.gone = true;
    if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill("SIGKILL");
  }
}

/** Whether a child's process handle, IPC channel and pipes keep this process's event loop alive. */
function refHandles(child: ChildProcess, keepAlive: boolean): void {
  // The pipes are net.Sockets (they have ref/unref); the types say only Readable/Writable.
  const handles = [child, child.channel, ...child.stdio] as unknown as ({ ref?(): void; unref?(): void } | null | undefined)[];
  for (const h of handles) (keepAlive ? h?.ref : h?.unref)?.call(h);
}

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
// Pre-replay (prepare()): the kernel also hands idle warm workers the session's cells, which they
// replay ahead (worker/pre-replay.ts), so a launch runs only the cells that are new and its body.
// The pool tracks what each worker replayed, in which folder and local modules, and which variables
// its cells read; a launch takes a pre-replayed worker only if that is a prefix of its own session
// and every variable read has the launch's value. Otherwise the worker is thrown away: cells only
// append to a session, but a worker whose history or environment differs cannot be made fresh.
import { spawn, type ChildProcess } from "child_process";
import { createHash } from "crypto";
import os from "os";
import path from "path";
import type { RecordedCell, WarmAssignment, WarmPrepare, WarmReport, WarmTake } from "../contract";
import { PER_LAUNCH_ENV } from "./worker-env";

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
  /** Ids (cellId) of the cells sent to it to replay, and how many of them it has replayed (reported). */
  sent: string[];
  replayed: number;
  /** The environment, folder and local modules its cells were replayed with, and the variables they read (→ first cell). */
  env: Record<string, string>;
  cwd: string;
  sideKey: string;
  reads: Record<string, number>;
}

/** What the kernel's cells see now: what a warm worker replays ahead (prepare()). */
export interface SessionSnapshot {
  cells: RecordedCell[];
  sideOutputs: { path: string; data: string }[];
  cwd: string;
  /** The environment a fresh rank would start from (before its launch's own variables). */
  env: Record<string, string>;
}

const cellIds = new WeakMap<RecordedCell, string>();
/** A recorded cell's identity: its execution count and its code (a re-run cell is a new one). */
function cellId(cell: RecordedCell): string {
  let id = cellIds.get(cell);
  if (id === undefined) {
    id = `${cell.executionCount}:${createHash("sha1").update(cell.js).digest("base64")}`;
    cellIds.set(cell, id);
  }
  return id;
}

function sideKeyOf(side: { path: string; data: string }[] = []): string {
  const hash = createHash("sha1");
  for (const s of side) hash.update(s.path).update("\0").update(s.data).update("\0");
  return hash.digest("base64");
}

const startsWith = (ids: string[], prefix: string[]) => prefix.length <= ids.length && prefix.every((id, i) => ids[i] === id);

/** TSLAUNCH_PRE_REPLAY=off: warm workers wait blank (a launch replays the whole session in them). */
export function preReplayEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return !/^(off|no|false|0)$/i.test(env.TSLAUNCH_PRE_REPLAY?.trim() ?? "");
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
  /** The session warm workers replay ahead (the last prepare()), and how far: never at or past `limit`. */
  private session: SessionSnapshot | null = null;
  private sessionIds: string[] = [];
  private limit = { at: Infinity, ids: [] as string[] };
  /** The last fill, to replace a worker whose pre-replay stopped. */
  private lastFill: { count: number; execArgv: string[]; cwd: string } | null = null;
  /** Why pre-replays stopped, newest last (for tests and the bench: which cell, which reason). */
  readonly stops: { at: number; reason: string }[] = [];

  constructor(private readonly options: WarmPoolOptions = {}) {}

  get size(): number {
    return this.idle.filter((w) => !w.gone).length;
  }

  get pids(): number[] {
    return this.idle.flatMap((w) => (w.gone || !w.child.pid ? [] : [w.child.pid]));
  }

  /** Starts warm workers until `count` are idle (capped by the pool's maximum). */
  fill(count: number, execArgv: string[] = [], cwd = process.cwd()): void {
    this.lastFill = { count, execArgv, cwd };
    const max = this.options.max ?? warmPoolLimit();
    const want = Math.min(count, max);
    const signature = startSignature(execArgv);
    // Workers started another way are of no use to the next launch: let them go.
    for (const w of this.idle.splice(0)) if (w.signature === signature && !w.gone) this.idle.push(w); else this.end(w);
    while (!this.disposed && this.size < want) {
      const w = this.start(signature, execArgv, cwd);
      this.idle.push(w);
      if (this.session) this.prepareWorker(w);
    }
  }

  /**
   * Has the idle warm workers replay `session` ahead of the next launch (only the cells they have
   * not replayed yet); a worker that replayed something else, elsewhere, or read a variable that
   * has changed since, is replaced. Call it when the kernel is idle and has touched no device.
   */
  prepare(session: SessionSnapshot): void {
    this.session = session;
    this.sessionIds = session.cells.map(cellId);
    // A stop learned on another history says nothing about this one.
    if (!startsWith(this.sessionIds, this.limit.ids)) this.limit = { at: Infinity, ids: [] };
    for (const w of [...this.idle]) if (!w.gone) this.prepareWorker(w);
    this.topUp();
  }

  /** Cells to replay ahead now: the session's, up to the first one that cannot be. */
  private target(): string[] {
    return this.sessionIds.slice(0, Math.min(this.limit.at, this.sessionIds.length));
  }

  private prepareWorker(w: WarmWorker): void {
    const session = this.session!;
    const target = this.target();
    const sideKey = sideKeyOf(session.sideOutputs);
    if (w.sent.length > 0) {
      const changed = this.changedRead(w, session.env);
      if (!startsWith(target, w.sent) || w.cwd !== session.cwd || w.sideKey !== sideKey || changed) {
        this.replace(w);
        return;
      }
    }
    if (target.length === w.sent.length) return;
    const message: WarmPrepare = {
      type: "tslaunch-prepare",
      first: w.sent.length,
      cells: session.cells.slice(w.sent.length, target.length),
      env: session.env,
      cwd: session.cwd,
      sideOutputs: session.sideOutputs,
      launchKeys: [...PER_LAUNCH_ENV],
    };
    w.sent = target;
    w.env = session.env;
    w.cwd = session.cwd;
    w.sideKey = sideKey;
    w.child.send(message);
  }

  /** The first variable the worker's cells read whose value `env` changes, or null. */
  private changedRead(w: WarmWorker, env: NodeJS.ProcessEnv): { key: string; at: number } | null {
    for (const [key, at] of Object.entries(w.reads)) if (at < w.sent.length && env[key] !== w.env[key]) return { key, at };
    if (w.replayed < w.sent.length) {
      // Still replaying: what its cells read is not known yet, so any change counts.
      for (const key of new Set([...Object.keys(env), ...Object.keys(w.env)])) if (env[key] !== w.env[key]) return { key, at: w.replayed };
    }
    return null;
  }

  private learn(at: number, reason: string): void {
    this.stops.push({ at, reason });
    if (at < this.limit.at) this.limit = { at, ids: this.sessionIds.slice(0, at) };
  }

  /**
   * Resolves once no idle worker is in the middle of a pre-replay (or after `timeoutMs`): a launch
   * that comes right after a new cell waits the few milliseconds its replay takes ahead rather
   * than spawning fresh workers.
   */
  settled(timeoutMs = 1000): Promise<void> {
    const busy = () => this.idle.some((w) => !w.gone && w.sent.length > w.replayed);
    if (!busy()) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.onChange = null;
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.onChange = () => {
        if (!busy()) done();
      };
    });
  }

  private onChange: (() => void) | null = null;

  private onReport(w: WarmWorker, report: WarmReport): void {
    if (report.type === "tslaunch-prepared") {
      w.replayed = report.replayed;
      w.reads = report.reads;
    } else {
      // It exits by itself; the cell it stopped at is never replayed ahead again in this history.
      w.gone = true;
      this.learn(report.at, report.reason);
      this.topUp();
    }
    this.onChange?.();
  }

  /** Ends a worker and starts a blank one in its place. */
  private replace(w: WarmWorker): void {
    this.end(w);
    this.topUp();
  }

  private topUp(): void {
    for (const w of this.idle.splice(0)) if (!w.gone) this.idle.push(w);
    if (this.lastFill && !this.disposed) this.fill(this.lastFill.count, this.lastFill.execArgv, this.lastFill.cwd);
  }

  /**
   * Takes a warm worker and gives it its launch (the complete environment a fresh rank would get).
   * Undefined when none fits: the caller spawns as usual.
   */
  take(execArgv: string[], assignment: WarmTake): ChildProcess | undefined {
    const signature = startSignature(execArgv, assignment.env);
    const launchIds = (assignment.replay ?? []).map(cellId);
    const sideKey = sideKeyOf(assignment.sideOutputs);
    for (let i = 0; i < this.idle.length; ) {
      const w = this.idle[i];
      if (w.sent.length > w.replayed) {
        i++; // still replaying: it stays for a later launch
        continue;
      }
      this.idle.splice(i, 1);
      if (w.gone || w.signature !== signature || !w.child.connected) {
        this.end(w);
        continue;
      }
      if (w.replayed > 0) {
        const changed = this.changedRead(w, assignment.env);
        if (!startsWith(launchIds, w.sent) || w.cwd !== assignment.cwd || w.sideKey !== sideKey || changed) {
          if (changed) this.learn(changed.at, `the launch's environment differs: ${changed.key}`);
          this.end(w);
          continue;
        }
      }
      w.child.removeAllListeners("exit");
      this.restorePriority(w.child);
      if (this.options.unref) refHandles(w.child, true); // a running rank keeps its launcher alive
      const message: WarmAssignment = {
        type: "tslaunch-assignment",
        env: Object.fromEntries(Object.entries(assignment.env).filter((e): e is [string, string] => e[1] !== undefined)),
        cwd: assignment.cwd,
        title: [process.execPath, ...execArgv, WORKER_MAIN].join(" "),
        replayed: w.replayed,
      };
      w.child.removeAllListeners("message");
      w.child.send(message);
      return w.child;
    }
    return undefined;
  }

  /** Ends every idle warm worker (kernel shutdown, restart, exit). */
  dispose(): void {
    this.disposed = true;
    for (const w of this.idle.splice(0)) this.end(w);
  }

  private start(signature: string, execArgv: string[], cwd: string): WarmWorker {
    // Not detached, and fd 3 is the lifeline, exactly as a freshly spawned worker (worker-group.ts).
    const child = spawn(process.execPath, [...execArgv, WARM_WORKER], { env: process.env, cwd, stdio: ["ignore", "pipe", "pipe", "pipe", "ipc"] });
    const w: WarmWorker = { child, signature, gone: false, sent: [], replayed: 0, env: {}, cwd, sideKey: "", reads: {} };
    child.on("message", (m: WarmReport) => {
      if (m?.type === "tslaunch-prepared" || m?.type === "tslaunch-spoiled") this.onReport(w, m);
    });
    child.once("exit", () => {
      w.gone = true;
      this.onChange?.();
    });
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

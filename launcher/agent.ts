// The elastic agent: starts a worker group, watches it every monitor_interval, stops it when a rank
// fails, restarts it while restarts are left, and reports everything as LaunchEvents. It knows
// nothing of Jupyter: the kernel turns events into iopub messages, the CLI into terminal lines.
import { spawn, type ChildProcess } from "child_process";
import { randomBytes } from "crypto";
import path from "path";
import { deserialize } from "v8";
import { LogChannel, type ChannelMessage } from "./log-channel";
import { LinePrefixer, renderPrefix } from "./prefix";
import { ENV, type DisplayPayload, type ErrorPayload } from "./protocol";
import { writePayload, type LaunchPayload } from "./payload";
import { createLaunchDir, type LaunchDir } from "./launch-dir";
import { createStackMapper } from "./stack-map";
import type { LaunchOptions } from "./options";
import { workerEnvironment } from "./worker-env";
import { IN_WORKER_ENV } from "./script-host";

export type WorkerState = "starting" | "running" | "succeeded" | "failed" | "stopped";
export type LaunchOutcome = "succeeded" | "failed" | "interrupted";

export interface WorkerInfo {
  rank: number;
  localRank: number;
  pid: number | undefined;
  state: WorkerState;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** The error the worker reported before it exited, stack mapped to cell lines. */
  error?: ErrorPayload;
  /** When the worker's exit was seen, for ordering failures. */
  endedAt?: number;
}

export interface RankFailure {
  rank: number;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  error?: ErrorPayload;
}

export interface RunResult {
  outcome: LaunchOutcome;
  /** Failures of the last attempt, the first one first. */
  failures: RankFailure[];
  /** The function API's return values, indexed by rank. */
  returnValues: unknown[];
  restarts: number;
  /** Signed-message check: how many messages were dropped as unsigned or forged. */
  droppedMessages: number;
}

export type LaunchEvent =
  | { type: "started"; rank: number; pid: number; restartCount: number }
  | { type: "output"; rank: number; name: "stdout" | "stderr"; text: string }
  | { type: "display"; rank: number; display: DisplayPayload; update: boolean }
  | { type: "state"; worker: WorkerInfo }
  | { type: "restarting"; restartCount: number; maxRestarts: number; reason: string }
  | { type: "done"; result: RunResult };

export interface WorkerSpec {
  options: LaunchOptions;
  numProcesses: number;
  payload: LaunchPayload;
  /** Extra environment for every worker (on top of process.env and the torchrun variables). */
  env?: Record<string, string>;
  /** Node flags for the workers (a script run with a TypeScript loader passes its own). */
  execArgv?: string[];
  /** SIGTERM, then SIGKILL after this many ms. */
  stopGraceMs?: number;
}

type RunningWorker = WorkerInfo & { child?: ChildProcess; closed: boolean; prefixers: Record<string, LinePrefixer> };

const WORKER_MAIN = path.join(__dirname, "worker-main.js");

export function describeFailure(f: RankFailure): string {
  if (f.signal) return `rank ${f.rank} was killed by ${f.signal}`;
  return `rank ${f.rank} exited with code ${f.exitCode}`;
}

/** One launch: a worker group, its attempts, and the resources that must not outlive it. */
export class Launch {
  private dir!: LaunchDir;
  private channel!: LogChannel;
  private readonly key = randomBytes(32);
  private workers: RunningWorker[] = [];
  private restartCount = 0;
  private stopRequested: LaunchOutcome | null = null;
  private readonly returnValues: unknown[] = [];
  private readonly mapStack: (stack: string) => string;
  private monitorTimer: NodeJS.Timeout | null = null;
  private wake: (() => void) | null = null;

  constructor(private readonly spec: WorkerSpec, private readonly onEvent: (e: LaunchEvent) => void) {
    this.mapStack = createStackMapper(spec.payload);
  }

  /** Ends the launch from outside (Jupyter's interrupt): every worker is stopped. */
  interrupt(): void {
    this.stopRequested ??= "interrupted";
    this.wake?.();
  }

  /** Stops every worker and waits until the launch has ended. */
  async stop(): Promise<void> {
    this.interrupt();
    await this.finished;
  }

  /** Synchronous last resort when the host process is exiting: SIGKILL everything, remove the folder. */
  abortSync(): void {
    for (const w of this.workers) if (!w.closed && w.child) w.child.kill("SIGKILL");
    this.dir?.remove();
  }

  private finished: Promise<unknown> = Promise.resolve();

  get pids(): number[] {
    return this.workers.flatMap((w) => (w.pid ? [w.pid] : []));
  }

  run(): Promise<RunResult> {
    const running = this.runAttempts();
    this.finished = running.catch(() => {});
    return running;
  }

  private async runAttempts(): Promise<RunResult> {
    this.dir = await createLaunchDir();
    let result: RunResult | undefined;
    try {
      this.channel = await LogChannel.open(`ipc://${this.dir.path}/agent.sock`, this.key, (m) => this.onChannelMessage(m));
      const payloadPath = path.join(this.dir.path, "payload.json");
      writePayload(payloadPath, this.spec.payload);
      for (;;) {
        const outcome = await this.runAttempt(payloadPath);
        const failures = this.failuresInOrder();
        const restartsLeft = this.restartCount < this.spec.options.maxRestarts;
        if (outcome === "failed" && restartsLeft && !this.stopRequested) {
          this.restartCount++;
          this.onEvent({
            type: "restarting", restartCount: this.restartCount, maxRestarts: this.spec.options.maxRestarts,
            reason: `worker group failed: ${describeFailure(failures[0])}`,
          });
          continue;
        }
        result = {
          outcome, failures, returnValues: this.returnValues, restarts: this.restartCount, droppedMessages: this.channel.dropped,
        };
        return result;
      }
    } finally {
      await this.stopAll();
      this.channel?.close();
      this.dir.remove();
      if (result) this.onEvent({ type: "done", result });
    }
  }

  private async runAttempt(payloadPath: string): Promise<LaunchOutcome> {
    const { options, numProcesses } = this.spec;
    this.returnValues.length = 0;
    this.barriers.clear();
    this.workers = [];
    for (let localRank = 0; localRank < numProcesses; localRank++) {
      const rank = options.nodeRank * numProcesses + localRank;
      const prefix = renderPrefix(options.logLinePrefixTemplate, { rank, local_rank: localRank, role_name: "default", node_rank: options.nodeRank });
      const env = {
        ...process.env,
        ...workerEnvironment(options, { rank, localRank, localWorldSize: numProcesses, restartCount: this.restartCount }),
        ...this.spec.env,
        [ENV.endpoint]: this.channel.endpoint,
        [ENV.key]: this.key.toString("hex"),
        [ENV.payload]: payloadPath,
        [IN_WORKER_ENV]: "1",
      };
      // Not detached: workers stay in the kernel's process group, so Jupyter's interrupt (a SIGINT
      // to the group) reaches them too. fd 3 is the lifeline (see worker-main).
      const child = spawn(process.execPath, [...(this.spec.execArgv ?? []), WORKER_MAIN], { env, cwd: this.spec.payload.cwd, stdio: ["ignore", "pipe", "pipe", "pipe"] });
      const worker: RunningWorker = {
        rank, localRank, pid: child.pid, state: "starting", exitCode: null, signal: null, child, closed: false,
        prefixers: { stdout: new LinePrefixer(prefix), stderr: new LinePrefixer(prefix), "chan:stdout": new LinePrefixer(prefix), "chan:stderr": new LinePrefixer(prefix) },
      };
      this.workers.push(worker);
      for (const name of ["stdout", "stderr"] as const) {
        child[name]!.setEncoding("utf8");
        child[name]!.on("data", (text: string) => this.emitOutput(worker, name, name, text));
      }
      child.on("error", (err) => {
        worker.error ??= { ename: err.name, evalue: err.message, stack: err.stack ?? err.message, phase: "body" };
      });
      child.on("close", (code, signal) => {
        for (const name of ["stdout", "stderr"] as const) {
          this.flushPartial(worker, name, name);
          this.flushPartial(worker, `chan:${name}`, name);
        }
        worker.closed = true;
        worker.exitCode = code;
        worker.signal = signal;
        worker.endedAt = performance.now();
        // Jupyter's interrupt signals the whole process group: a worker killed by SIGINT was interrupted.
        if (signal === "SIGINT") this.stopRequested ??= "interrupted";
        worker.state = code === 0 ? "succeeded" : worker.state === "stopped" || this.stopRequested ? "stopped" : "failed";
        this.emitState(worker);
        this.wake?.();
      });
      if (child.pid) this.onEvent({ type: "started", rank, pid: child.pid, restartCount: this.restartCount });
      this.emitState(worker);
    }
    return this.monitor();
  }

  /** Checks the group every monitor_interval until it succeeded, failed or was stopped. */
  private async monitor(): Promise<LaunchOutcome> {
    const intervalMs = this.spec.options.monitorInterval * 1000;
    for (;;) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.monitorTimer = setTimeout(resolve, intervalMs);
      });
      if (this.monitorTimer) clearTimeout(this.monitorTimer);
      this.wake = null;
      if (this.stopRequested) {
        await this.stopAll();
        return this.stopRequested;
      }
      if (this.workers.some((w) => w.state === "failed")) {
        await this.stopAll();
        return "failed";
      }
      if (this.workers.every((w) => w.closed && w.state === "succeeded")) return "succeeded";
    }
  }

  /** SIGTERM to every live worker, SIGKILL after the grace period; resolves when all are closed. */
  private async stopAll(): Promise<void> {
    const live = this.workers.filter((w) => !w.closed && w.child);
    if (live.length === 0) return;
    for (const w of live) {
      if (w.state !== "failed") w.state = "stopped";
      w.child!.kill("SIGTERM");
    }
    const grace = this.spec.stopGraceMs ?? 1500;
    const allClosed = () => live.every((w) => w.closed);
    const deadline = performance.now() + grace;
    while (!allClosed() && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const w of live) if (!w.closed) w.child!.kill("SIGKILL");
    while (!allClosed()) await new Promise((r) => setTimeout(r, 10));
  }

  private failuresInOrder(): RankFailure[] {
    return this.workers
      .filter((w) => w.state === "failed")
      .sort((a, b) => (a.endedAt ?? 0) - (b.endedAt ?? 0))
      .map((w) => ({ rank: w.rank, exitCode: w.exitCode, signal: w.signal, error: w.error }));
  }

  private workerFor(from: string): RunningWorker | undefined {
    const m = /^rank(\d+)-pid(\d+)$/.exec(from);
    return m ? this.workers.find((w) => w.rank === Number(m[1]) && w.pid === Number(m[2])) : undefined;
  }

  private onChannelMessage({ from, message, binary }: ChannelMessage): void {
    const worker = this.workerFor(from);
    if (!worker) return; // a message from an earlier attempt's worker
    switch (message.type) {
      case "hello":
        if (worker.state === "starting") {
          worker.state = "running";
          this.emitState(worker);
        }
        break;
      case "stream":
        this.emitOutput(worker, `chan:${message.name}`, message.name, message.text);
        break;
      case "display":
        this.onEvent({ type: "display", rank: worker.rank, display: message.display, update: message.update });
        break;
      case "result":
        this.returnValues[worker.rank] = binary ? deserialize(binary) : undefined;
        break;
      case "error":
        worker.error = { ...message.error, stack: this.mapStack(message.error.stack) };
        break;
      case "barrier":
        this.onBarrier(from, message.seq);
        break;
      case "eos":
        break;
    }
  }

  /** Barrier `seq` is released once every rank of the attempt has reached it. */
  private readonly barriers = new Map<number, Set<string>>();
  private onBarrier(from: string, seq: number): void {
    const arrived = this.barriers.get(seq) ?? new Set<string>();
    arrived.add(from);
    this.barriers.set(seq, arrived);
    if (arrived.size < this.workers.length) return;
    this.barriers.delete(seq);
    for (const id of arrived) this.channel.sendTo(id, { type: "release", seq });
  }

  private emitOutput(worker: RunningWorker, source: string, name: "stdout" | "stderr", text: string): void {
    const out = worker.prefixers[source].push(text);
    if (out) this.onEvent({ type: "output", rank: worker.rank, name, text: out });
  }

  private flushPartial(worker: RunningWorker, source: string, name: "stdout" | "stderr"): void {
    const out = worker.prefixers[source].end();
    if (out) this.onEvent({ type: "output", rank: worker.rank, name, text: out });
  }

  private emitState(worker: RunningWorker): void {
    const { child: _child, prefixers: _p, closed: _c, ...info } = worker;
    this.onEvent({ type: "state", worker: { ...info } });
  }
}

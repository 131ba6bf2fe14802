// One node's worker processes for one attempt: where a worker is spawned, where its output is read
// (stdout/stderr pipes and the log channel) and prefixed, and how the group is stopped. The agent
// (agent.ts for the launching node, node-agent.ts for a joined node) decides when.
import { spawn, type ChildProcess } from "child_process";
import { createHmac } from "crypto";
import { deserialize } from "v8";
import path from "path";
import type { Writable } from "stream";
import type { LogChannel, ChannelMessage } from "../channel";
import { removeSegments } from "../collectives";
import { ENV, traceMark, type AgentMessage, type ExchangeScope, type GroupEvent, type LaunchKeys, type PrestartedWorkers, type LaunchOptions, type LaunchPayload, type RankFailure, type WorkerInfo, type World } from "../contract";
import { visibleAccelerators } from "../devices";
import { endMarkedProcesses, killMarkedProcessesSync } from "./descendants";
import { LinePrefixer } from "./prefix";
import { workerEnvironment } from "./worker-env";
import { killProcessesSync, PIPE_DRAIN_MS, stopProcesses, STOP_GRACE_MS } from "./stop";

export interface GroupSpec {
  options: LaunchOptions;
  /** The attempt's world, as the agent formed it: this group runs the ranks placed on `nodeRank`. */
  world: World;
  nodeRank: number;
  payloadPath: string;
  /** This node's address for the ranks' data plane (other nodes connect to it). */
  dataHost: string;
  /** Keys the data plane with the launch id: the shared secret across nodes (never sent), else random. */
  dataSecret: Buffer;
  cwd: string;
  env?: Record<string, string>;
  execArgv?: string[];
  stopGraceMs?: number;
  /** Already-running workers to take before spawning (the kernel's warm pool). */
  prestarted?: PrestartedWorkers;
  /** The launch's session: a pre-replayed warm worker is taken only if it replayed a prefix of it. */
  payload?: LaunchPayload;
  /** Maps a worker's stack to cell lines. */
  mapStack(stack: string): string;
  /** Milliseconds since the launch began. */
  clock(): number;
}

const WORKER_MAIN = path.join(__dirname, "..", "worker", "worker-main.js");

type RunningWorker = WorkerInfo & { child?: ChildProcess; closed: boolean; prefixers: Record<string, LinePrefixer>; routingId?: string };

export class WorkerGroup {
  readonly workers: RunningWorker[] = [];
  private stopping = false;

  constructor(
    private readonly spec: GroupSpec,
    private readonly channel: LogChannel,
    private readonly hooks: { onEvent(e: GroupEvent): void; onExchange(rank: number, scope: ExchangeScope, seq: number, value: string): void; onChange(): void },
  ) {}

  start(): void {
    const { options, world, nodeRank } = this.spec;
    traceMark("group: start");
    const mine = world.ranks.filter((r) => r.nodeRank === nodeRank);
    const restartCount = world.restartCount;
    // The keys go over each worker's lifeline (fd 3), not its environment (see worker-main).
    const keys: LaunchKeys = {
      channel: this.channel.keyHex,
      collectives: createHmac("sha256", this.spec.dataSecret).update(`tslaunch collectives ${world.launchId}`).digest("hex"),
    };
    const collectives = {
      [ENV.ranksByNode]: JSON.stringify(ranksByNode(world)),
      [ENV.dataHost]: this.spec.dataHost,
      [ENV.segmentPrefix]: this.segmentPrefix,
      [ENV.collectiveTimeoutMs]: String(Math.round(options.collectiveTimeout * 1000)),
    };
    // One accelerator per local rank: each worker sees only its own (unless the launch hides them all,
    // as debugLauncher does). More ranks than devices share them round-robin, which the
    // ACCELERATE_DEBUG_MODE probe reports.
    const devices = this.spec.env?.CUDA_VISIBLE_DEVICES !== undefined ? [] : visibleAccelerators().ids;
    for (const { rank, localRank, prefix } of mine) {
      const env = {
        ...process.env,
        ...workerEnvironment(options, { rank, localRank, localWorldSize: mine.length, worldSize: world.worldSize, nodeRank, restartCount, masterPort: world.masterPort, numNodes: world.numNodes }),
        ...(devices.length > 0 ? { CUDA_VISIBLE_DEVICES: devices[localRank % devices.length], TSLAUNCH_DEVICE: `cuda:${devices[localRank % devices.length]}` } : {}),
        ...this.spec.env,
        [ENV.endpoint]: this.channel.endpoint,
        [ENV.payload]: this.spec.payloadPath,
        [ENV.inWorker]: "1",
        ...collectives,
      };
      // Not detached: workers stay in the kernel's process group, so Jupyter's interrupt (a SIGINT
      // to the group) reaches them too. fd 3 is the lifeline (see worker-main). A warm worker (the
      // kernel's pool) was started the same way and now takes this rank's environment.
      const execArgv = this.spec.execArgv ?? [];
      const child =
        this.spec.prestarted?.take(execArgv, { env, cwd: this.spec.cwd, replay: this.spec.payload?.replay, sideOutputs: this.spec.payload?.sideOutputs }) ??
        spawn(process.execPath, [...execArgv, WORKER_MAIN], { env, cwd: this.spec.cwd, stdio: ["ignore", "pipe", "pipe", "pipe"] });
      traceMark(`group: rank ${rank} process ready`);
      const lifeline = child.stdio[3] as Writable | null;
      lifeline?.on("error", () => {}); // a worker that died before reading: its exit is reported
      lifeline?.write(`${JSON.stringify(keys)}\n`);
      const worker: RunningWorker = {
        rank, localRank, nodeRank, pid: child.pid, state: "starting", exitCode: null, signal: null, child, closed: false, restartCount,
        routingId: child.pid ? `rank${rank}-pid${child.pid}` : undefined,
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
      child.on("close", (code, signal) => this.onClose(worker, code, signal));
      // A process the rank started may hold the rank's stdout/stderr open after the rank exited
      // (`sleep 30 &` with stdio inherited): read what comes for a short drain, then let go of the
      // pipes so the rank counts as ended ("close" follows).
      child.once("exit", () => {
        setTimeout(() => {
          if (worker.closed) return;
          for (const pipe of [child.stdout, child.stderr]) pipe?.destroy();
        }, PIPE_DRAIN_MS).unref();
      });
      if (child.pid) this.hooks.onEvent({ type: "started", rank, pid: child.pid, restartCount, nodeRank });
      this.emitState(worker);
      traceMark(`group: rank ${rank} events shown`);
    }
    traceMark("group: all handed out");
  }

  private onClose(worker: RunningWorker, code: number | null, signal: NodeJS.Signals | null): void {
    traceMark(`group: rank ${worker.rank} closed`);
    for (const name of ["stdout", "stderr"] as const) {
      this.flushPartial(worker, name, name);
      this.flushPartial(worker, `chan:${name}`, name);
    }
    worker.closed = true;
    worker.exitCode = code;
    worker.signal = signal;
    worker.endedAt = this.spec.clock();
    // Jupyter's interrupt signals the whole process group: a worker killed by SIGINT was interrupted.
    if (signal === "SIGINT") this.interruptedBySignal = true;
    worker.state = code === 0 ? "succeeded" : worker.state === "stopped" || this.stopping || signal === "SIGINT" ? "stopped" : "failed";
    this.emitState(worker);
    this.hooks.onChange();
  }

  /** True once a worker died of SIGINT (Jupyter interrupts the process group). */
  interruptedBySignal = false;

  get anyFailed(): boolean {
    return this.workers.some((w) => w.state === "failed");
  }

  get allSucceeded(): boolean {
    return this.workers.every((w) => w.closed && w.state === "succeeded");
  }

  get allClosed(): boolean {
    return this.workers.every((w) => w.closed);
  }

  failures(): RankFailure[] {
    return this.workers
      .filter((w) => w.state === "failed")
      .map((w) => ({ rank: w.rank, nodeRank: w.nodeRank, exitCode: w.exitCode, signal: w.signal, error: w.error, endedAt: w.endedAt }));
  }

  /** Stops every live worker (see stop.ts); resolves when all are closed. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const w of this.workers) if (!w.closed && w.state !== "failed") w.state = "stopped";
    await stopProcesses(this.workers, this.spec.stopGraceMs ?? STOP_GRACE_MS);
    traceMark("group: processes stopped");
    // What the ranks started (children, detached daemons, `sleep 30 &`) ends with them.
    await endMarkedProcesses(this.segmentPrefix, this.spec.stopGraceMs ?? STOP_GRACE_MS);
    removeSegments(this.segmentPrefix); // in case a rank died before its shared memory was unlinked
  }

  /** Names this attempt's shared memory on this node: /dev/shm/<prefix>-... */
  get segmentPrefix(): string {
    return `tsl-${this.spec.world.launchId}-n${this.spec.nodeRank}a${this.spec.world.attempt}`;
  }

  /** Synchronous last resort when the host process is exiting (see stop.ts). */
  killSync(): void {
    killProcessesSync(this.workers);
    killMarkedProcessesSync(this.segmentPrefix);
    removeSegments(this.segmentPrefix);
  }

  /** Sends a control-plane message to every live worker of this group (exchange results, peer-failed). */
  sendToAll(message: AgentMessage): void {
    for (const w of this.workers) if (w.routingId && !w.closed) this.channel.sendTo(w.routingId, message);
  }

  /** Messages from this group's workers (the agent routes by routing id). */
  owns(from: string): boolean {
    return this.workers.some((w) => w.routingId === from);
  }

  onChannelMessage({ from, message, binary }: ChannelMessage): void {
    const worker = this.workers.find((w) => w.routingId === from);
    if (!worker) return;
    if (message.type === "hello" || message.type === "body" || message.type === "eos") traceMark(`group: rank ${worker.rank} ${message.type}`);
    switch (message.type) {
      case "hello":
        if (worker.state === "starting") {
          worker.state = "replaying";
          this.emitState(worker);
        }
        break;
      case "body":
        if (worker.state === "starting" || worker.state === "replaying") {
          worker.state = "running";
          this.emitState(worker);
        }
        break;
      case "stream":
        this.emitOutput(worker, `chan:${message.name}`, message.name, message.text);
        break;
      case "display":
        this.hooks.onEvent({ type: "display", rank: worker.rank, display: message.display, update: message.update });
        break;
      case "result":
        if (binary) this.hooks.onEvent({ type: "result", rank: worker.rank, value: binary });
        break;
      case "error":
        worker.error = { ...message.error, stack: this.spec.mapStack(message.error.stack) };
        break;
      case "exchange":
        this.hooks.onExchange(worker.rank, message.scope, message.seq, message.value);
        break;
      case "eos":
        break;
    }
  }

  private emitOutput(worker: RunningWorker, source: string, name: "stdout" | "stderr", text: string): void {
    const out = worker.prefixers[source].push(text);
    if (out) this.hooks.onEvent({ type: "output", rank: worker.rank, name, text: out });
  }

  private flushPartial(worker: RunningWorker, source: string, name: "stdout" | "stderr"): void {
    const out = worker.prefixers[source].end();
    if (out) this.hooks.onEvent({ type: "output", rank: worker.rank, name, text: out });
  }

  private emitState(worker: RunningWorker): void {
    const { child: _c, prefixers: _p, closed: _cl, routingId: _r, ...info } = worker;
    this.hooks.onEvent({ type: "state", worker: { ...info } });
  }
}

/** The world's ranks per node, node-rank ordered (what the collectives need to pick their paths). */
function ranksByNode(world: World): number[][] {
  const byNode = new Map<number, number[]>();
  for (const r of world.ranks) byNode.set(r.nodeRank, [...(byNode.get(r.nodeRank) ?? []), r.rank]);
  return [...byNode.entries()].sort((a, b) => a[0] - b[0]).map(([, ranks]) => ranks);
}

export function decodeResult(value: Buffer): unknown {
  return deserialize(value);
}

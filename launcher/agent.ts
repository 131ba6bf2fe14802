// The elastic agent of the launching node: runs the launch's attempts. Each attempt starts this
// node's worker group (and, across nodes, tells the joined agents to start theirs), watches every
// monitor_interval, stops everything when a rank fails, and restarts the whole world while
// restarts are left. It knows nothing of Jupyter: it reports LaunchEvents, which the kernel turns
// into iopub messages and the CLI into terminal lines.
import { randomBytes } from "crypto";
import net from "net";
import os from "os";
import path from "path";
import { LogChannel } from "./log-channel";
import { writePayload, type LaunchPayload } from "./payload";
import { createLaunchDir, type LaunchDir } from "./launch-dir";
import { createStackMapper } from "./stack-map";
import type { LaunchOptions } from "./options";
import { decodeResult, WorkerGroup, type GroupEvent, type RankFailure, type WorkerInfo, type WorkerState } from "./worker-group";
import { RendezvousStore, rdzvSeconds, secretFrom, storeAddress, type JoinedNode, type NodeMessage } from "./rendezvous";

export type { RankFailure, WorkerInfo, WorkerState };
export type LaunchOutcome = "succeeded" | "failed" | "interrupted";

export interface RunResult {
  outcome: LaunchOutcome;
  /** Failures of the last attempt, the first one first. */
  failures: RankFailure[];
  /** The function API's return values, indexed by rank. */
  returnValues: unknown[];
  restarts: number;
  worldSize: number;
  /** Messages dropped because they were unsigned or forged (log channel and store). */
  droppedMessages: number;
}

export type LaunchEvent =
  | Exclude<GroupEvent, { type: "result" }>
  | { type: "notice"; text: string }
  | { type: "restarting"; restartCount: number; maxRestarts: number; reason: string }
  | { type: "done"; result: RunResult };

export interface WorkerSpec {
  options: LaunchOptions;
  /** Processes on this node. */
  numProcesses: number;
  payload: LaunchPayload;
  /** Extra environment for every worker (on top of process.env and the torchrun variables). */
  env?: Record<string, string>;
  /** Node flags for the workers (a script run with a TypeScript loader passes its own). */
  execArgv?: string[];
  /** SIGTERM, then SIGKILL after this many ms. */
  stopGraceMs?: number;
  /** The shared secret for launches across nodes (else TSLAUNCH_SECRET). */
  secret?: string;
}

export function describeFailure(f: RankFailure): string {
  const where = f.nodeRank > 0 ? ` on node ${f.nodeRank}` : "";
  if (f.signal) return `rank ${f.rank}${where} was killed by ${f.signal}`;
  return `rank ${f.rank}${where} exited with code ${f.exitCode}`;
}

/** True when nothing listens on host:port (so MASTER_PORT can be handed to the workers). */
function portIsFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** One launch: its attempts, and the resources that must not outlive it. */
export class Launch {
  private dir?: LaunchDir;
  private channel?: LogChannel;
  private store?: RendezvousStore;
  private group?: WorkerGroup;
  private attempt = 0;
  private restartCount = 0;
  private worldSize: number;
  private stopRequested: LaunchOutcome | null = null;
  private returnValues: unknown[] = [];
  private readonly barriers = new Map<number, Set<number>>();
  private readonly mapStack: (stack: string) => string;
  private readonly started = performance.now();
  private wake: (() => void) | null = null;
  private finished: Promise<unknown> = Promise.resolve();

  constructor(private readonly spec: WorkerSpec, private readonly onEvent: (e: LaunchEvent) => void) {
    this.mapStack = createStackMapper(spec.payload);
    this.worldSize = spec.numProcesses;
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
    this.group?.killSync();
    this.store?.broadcast({ type: "stop", attempt: this.attempt });
    this.dir?.remove();
  }

  get pids(): number[] {
    return this.group?.workers.flatMap((w) => (w.pid ? [w.pid] : [])) ?? [];
  }

  run(): Promise<RunResult> {
    const running = this.runAttempts();
    this.finished = running.catch(() => {});
    return running;
  }

  private clock = () => performance.now() - this.started;

  private async runAttempts(): Promise<RunResult> {
    const { options } = this.spec;
    this.dir = await createLaunchDir();
    let result: RunResult | undefined;
    try {
      this.channel = await LogChannel.open(`ipc://${this.dir.path}/agent.sock`, randomBytes(32), (m) => this.group?.onChannelMessage(m));
      const payloadPath = path.join(this.dir.path, "payload.json");
      writePayload(payloadPath, this.spec.payload);
      if (options.numNodes > 1) {
        try {
          await this.gatherNodes();
        } catch (err) {
          // Interrupted while waiting for the other nodes: an interrupted launch, not a setup error.
          if (!this.stopRequested) throw err;
          result = { outcome: "interrupted", failures: [], returnValues: [], restarts: 0, worldSize: this.worldSize, droppedMessages: this.channel.dropped };
          return result;
        }
      } else await this.pickMasterPort();
      for (;;) {
        const outcome = await this.runAttempt(payloadPath);
        const failures = this.failuresInOrder();
        if (outcome === "failed" && this.restartCount < options.maxRestarts && !this.stopRequested) {
          this.restartCount++;
          this.onEvent({
            type: "restarting", restartCount: this.restartCount, maxRestarts: options.maxRestarts,
            reason: `worker group failed: ${describeFailure(failures[0])}`,
          });
          continue;
        }
        result = {
          outcome, failures, returnValues: this.returnValues, restarts: this.restartCount, worldSize: this.worldSize,
          droppedMessages: this.channel.dropped + (this.store?.refused ?? 0),
        };
        return result;
      }
    } finally {
      await this.group?.stop();
      if (this.store) {
        this.store.broadcast({ type: "finish", outcome: result?.outcome ?? "failed" });
        await this.store.flushed();
        this.store.close();
      }
      this.channel?.close();
      this.dir.remove();
      if (result) this.onEvent({ type: "done", result });
    }
  }

  /** Single node: MASTER_PORT must be free for the workers; a busy one is replaced, and said so. */
  private async pickMasterPort(): Promise<void> {
    const o = this.spec.options;
    if (await portIsFree(o.masterAddr, Number(o.usePort))) return;
    const port = await freePort(o.masterAddr);
    this.onEvent({ type: "notice", text: `use_port ${o.usePort} is busy on ${o.masterAddr}; the workers get MASTER_PORT=${port} instead.` });
    this.spec.options = { ...o, usePort: String(port) };
  }

  /** Several nodes: host the store, wait for the other agents, hand them the session and body. */
  private async gatherNodes(): Promise<void> {
    const o = this.spec.options;
    const secret = secretFrom(this.spec.secret);
    this.store = new RendezvousStore(secret, o, this.spec.numProcesses, { onNodeMessage: (_node, m, b) => this.onNodeMessage(m, b) });
    const { host, port, flag } = storeAddress(o);
    await this.store.bind(host, port, flag);
    this.onEvent({ type: "notice", text: `waiting for ${o.numNodes - 1} more node(s) to join at ${host}:${port} (${o.rdzvBackend} rendezvous, rdzv_id ${o.rdzvId})` });
    this.worldSize = await this.store.gather(this.spec.payload, this.spec.env ?? {}, rdzvSeconds(o, "join_timeout", 600) * 1000, () => this.stopRequested !== null);
    const nodes = [...this.store.nodes.values()].map((n) => `node ${n.nodeRank} (${n.host}, ${n.numProcesses} process${n.numProcesses > 1 ? "es" : ""})`);
    this.onEvent({ type: "notice", text: `${o.numNodes} nodes joined, world size ${this.worldSize}: node 0 (${os.hostname()}, ${this.spec.numProcesses}), ${nodes.join(", ")}` });
  }

  private async runAttempt(payloadPath: string): Promise<LaunchOutcome> {
    this.attempt++;
    this.returnValues = [];
    this.barriers.clear();
    for (const n of this.store?.nodes.values() ?? []) n.outcome = undefined;
    this.group = new WorkerGroup(
      {
        options: this.spec.options, numProcesses: this.spec.numProcesses, nodeRank: 0, rankOffset: 0, worldSize: this.worldSize,
        restartCount: this.restartCount, payloadPath, cwd: this.spec.payload.cwd, env: this.spec.env, execArgv: this.spec.execArgv,
        stopGraceMs: this.spec.stopGraceMs, mapStack: this.mapStack, clock: this.clock,
      },
      this.channel!,
      {
        onEvent: (e) => this.onGroupEvent(e),
        onBarrier: (rank, seq) => this.onBarrier(rank, seq),
        onChange: () => this.wake?.(),
      },
    );
    this.group.start();
    this.store?.broadcast({ type: "start", attempt: this.attempt, restartCount: this.restartCount });
    return this.monitor();
  }

  /** Checks the world every monitor_interval until it succeeded, failed or was stopped. */
  private async monitor(): Promise<LaunchOutcome> {
    const intervalMs = this.spec.options.monitorInterval * 1000;
    const group = this.group!;
    const remotes = [...(this.store?.nodes.values() ?? [])];
    const silentLimitMs = this.store ? rdzvSeconds(this.spec.options, "timeout", 30) * 1000 : Infinity;
    for (;;) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, intervalMs);
      });
      this.wake = null;
      if (group.interruptedBySignal) this.stopRequested ??= "interrupted";
      const now = performance.now();
      const lost = remotes.find((n) => !n.outcome && now - n.lastSeen > silentLimitMs);
      if (lost) this.onEvent({ type: "notice", text: `node ${lost.nodeRank} (${lost.host}) stopped answering; treating its ranks as failed.` });
      const remoteFailed = lost || remotes.some((n) => n.outcome?.attempt === this.attempt && n.outcome.outcome === "failed");
      if (this.stopRequested || group.anyFailed || remoteFailed) {
        if (lost) lost.outcome = { attempt: this.attempt, outcome: "failed", receivedAt: now, failures: [{ rank: lost.rankOffset, nodeRank: lost.nodeRank, exitCode: null, signal: null, error: { ename: "NodeLost", evalue: `node ${lost.nodeRank} stopped answering`, stack: "", phase: "body" } }] };
        await this.stopWorld(remotes);
        return this.stopRequested ?? "failed";
      }
      const remotesDone = remotes.every((n) => n.outcome?.attempt === this.attempt && n.outcome.outcome === "succeeded");
      if (group.allSucceeded && remotesDone) return "succeeded";
    }
  }

  private async stopWorld(remotes: JoinedNode[]): Promise<void> {
    this.store?.broadcast({ type: "stop", attempt: this.attempt });
    await this.group?.stop();
    // Give joined nodes a moment to report how their group ended (their failures belong in the report).
    const deadline = performance.now() + (this.spec.stopGraceMs ?? 1500) + 2000;
    while (remotes.some((n) => n.outcome?.attempt !== this.attempt) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  }

  private failuresInOrder(): RankFailure[] {
    const local = this.group?.failures() ?? [];
    const remote = [...(this.store?.nodes.values() ?? [])].flatMap((n) =>
      n.outcome?.attempt === this.attempt ? n.outcome.failures.map((f) => ({ ...f, endedAt: n.outcome!.receivedAt - this.started })) : [],
    );
    return [...local, ...remote].sort((a, b) => (a.endedAt ?? 0) - (b.endedAt ?? 0));
  }

  private onGroupEvent(e: GroupEvent): void {
    if (e.type === "result") this.returnValues[e.rank] = decodeResult(e.value);
    else this.onEvent(e);
  }

  private onNodeMessage(m: NodeMessage, binary?: Buffer): void {
    switch (m.type) {
      case "event":
        this.onEvent(m.event);
        break;
      case "result":
        if (binary) this.returnValues[m.rank] = decodeResult(binary);
        break;
      case "barrier":
        this.onBarrier(m.rank, m.seq);
        break;
      case "group":
        this.wake?.();
        break;
      default:
        break;
    }
  }

  /** Barrier `seq` is released once every rank of the world has reached it. */
  private onBarrier(rank: number, seq: number): void {
    const arrived = this.barriers.get(seq) ?? new Set<number>();
    arrived.add(rank);
    this.barriers.set(seq, arrived);
    if (arrived.size < this.worldSize) return;
    this.barriers.delete(seq);
    this.group?.release(seq);
    this.store?.broadcast({ type: "release", seq });
  }
}

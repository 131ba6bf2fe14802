// The elastic agent of the launching node: runs the launch's attempts. Each attempt forms the world
// (and publishes it), starts this node's worker group (and, across nodes, tells the joined agents to
// start theirs), watches every monitor_interval, stops everything when a rank fails, and restarts
// the whole world while restarts are left. Its life is one LaunchState, changed only in setState.
// It knows nothing of Jupyter: it reports LaunchEvents, which the kernel turns into iopub messages
// and the CLI into terminal lines.
import { randomBytes } from "crypto";
import net from "net";
import os from "os";
import path from "path";
import { channelEndpoint, createLaunchDir, LogChannel, type LaunchDir } from "../channel";
import {
  describeFailure, traceMark, usesEtcd, writePayload, LaunchSetupError, RendezvousError,
  type ExchangeScope, type GroupEvent, type LaunchEvent, type LaunchOutcome, type LaunchPayload, type LaunchState, type NodeMessage, type WorkerState, type RankFailure, type RunResult, type WorkerSpec, type World,
} from "../contract";
import { createStackMapper, decodeResult, formWorld, REMOTE_REPORT_MS, STOP_GRACE_MS, WorkerGroup } from "../group";
import { RankLogs } from "./rank-logs";
import { EtcdDirectory, etcdEndpoints, localAddressToward, RendezvousStore, rdzvSeconds, secretFrom, storeAddress, type JoinedNode } from "../rendezvous";

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
  /** The etcd rendezvous (--rdzv_backend etcd): where this launch is announced, and who left. */
  private etcd?: EtcdDirectory;
  /** Across nodes: this node's address as the other nodes reach it (where its store listens); the ranks' data plane listens there too. */
  private reachableHost?: string;
  private group?: WorkerGroup;
  private state: LaunchState = "starting";
  /** Set by interrupt()/stop(), or when Jupyter's SIGINT reached the workers. */
  private stopRequested: LaunchOutcome | null = null;
  private world: World | null = null;
  /** The nodes that joined (node 0 not included), in node-rank order. */
  private joined: JoinedNode[] = [];
  private masterPort = 0;
  private restartCount = 0;
  private returnValues: unknown[] = [];
  /** Bytes of output the host was given, and whether the output limit was passed (see withinOutputLimit). */
  private outputShown = 0;
  private outputOverLimit = false;
  /** torchrun's log files and filters (--log_dir, --redirects, --tee, --local_ranks_filter). */
  private readonly logs: RankLogs;
  /** Each rank's last state in the current attempt (for the report: finished, stopped, failed). */
  private rankStates: Record<number, WorkerState> = {};
  /** Control-plane exchanges (barriers, the collectives' set-up) in progress, by "scope:seq". */
  private readonly exchanges = new Map<string, { scope: ExchangeScope; seq: number; since: number; values: Map<number, string> }>();
  private readonly mapStack: (stack: string) => string;
  /** Names the launch on every node; with the secret it keys the ranks' data plane. */
  private readonly launchId = randomBytes(6).toString("hex");
  /** Keys the collectives' traffic: the shared secret across nodes, else a random one. */
  private dataSecret = randomBytes(32);
  private readonly started = performance.now();
  /** Ends the monitor's current wait early (a worker closed, a node reported, a stop was asked). */
  private wake: (() => void) | null = null;
  private finished: Promise<unknown> = Promise.resolve();

  constructor(private readonly spec: WorkerSpec, private readonly onEvent: (e: LaunchEvent) => void) {
    this.logs = new RankLogs(spec.options, (spec.outputLimit ?? 0) > 0);
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
    this.group?.killSync();
    this.store?.broadcast({ type: "stop", attempt: this.world?.attempt ?? 0 });
    this.dir?.remove();
  }

  get pids(): number[] {
    return this.group?.workers.flatMap((w) => (w.pid ? [w.pid] : [])) ?? [];
  }

  get currentState(): LaunchState {
    return this.state;
  }

  run(): Promise<RunResult> {
    const running = this.runAttempts();
    this.finished = running.catch(() => {});
    return running;
  }

  /** The one place the launch's state changes; every change is an event (the live view mirrors it). */
  private setState(next: LaunchState): void {
    if (next === this.state) return;
    const previous = this.state;
    this.state = next;
    this.onEvent({ type: "launch-state", state: next, previous });
  }

  private clock = () => performance.now() - this.started;

  private result(outcome: LaunchOutcome, failures: RankFailure[]): RunResult {
    return {
      outcome, failures, returnValues: this.returnValues, restarts: this.restartCount, rankStates: { ...this.rankStates },
      worldSize: this.world?.worldSize ?? this.spec.numProcesses + this.joined.reduce((n, j) => n + j.numProcesses, 0),
      world: this.world, droppedMessages: (this.channel?.dropped ?? 0) + (this.store?.refused ?? 0),
    };
  }

  private async runAttempts(): Promise<RunResult> {
    const { options } = this.spec;
    let result: RunResult | undefined;
    let step = "create the launch folder";
    traceMark("agent: run");
    try {
      this.dir = await createLaunchDir();
      step = "open the launch's log channel";
      this.channel = await LogChannel.open(channelEndpoint(this.dir), randomBytes(32), (m) => this.group?.onChannelMessage(m));
      step = "write the launch's payload (the session and the body)";
      const payloadPath = path.join(this.dir.path, "payload.json");
      writePayload(payloadPath, this.spec.payload);
      step = "";
      traceMark("agent: folder, channel, payload ready");
      if (options.numNodes > 1) {
        this.setState("gathering");
        try {
          await this.gatherNodes();
        } catch (err) {
          // Interrupted while waiting for the other nodes: an interrupted launch, not a setup error.
          if (!this.stopRequested) throw err;
          return (result = this.result("interrupted", []));
        }
      } else this.masterPort = await this.pickMasterPort();
      traceMark("agent: port picked");
      for (let attempt = 1; ; attempt++) {
        const outcome = await this.runAttempt(attempt, payloadPath);
        const failures = this.failuresInOrder();
        if (this.grows && !this.stopRequested) {
          // Nodes joined a running elastic launch (--num_nodes MIN:MAX): a new round admits them.
          // As in torch, this is not a restart of max_restarts.
          this.setState("restarting");
          this.onEvent({ type: "restarting", restartCount: this.restartCount, maxRestarts: options.maxRestarts, reason: `the world grows: ${this.grows}` });
          this.grows = null;
          await this.regather(false);
          continue;
        }
        if (outcome === "failed" && this.restartCount < options.maxRestarts && !this.stopRequested) {
          this.restartCount++;
          this.setState("restarting");
          this.onEvent({
            type: "restarting", restartCount: this.restartCount, maxRestarts: options.maxRestarts,
            reason: `worker group failed: ${describeFailure(failures[0])}`,
          });
          if (this.store && usesEtcd(options)) {
            try {
              await this.regather(true);
            } catch (err) {
              if (!this.stopRequested) throw err;
              return (result = this.result("interrupted", failures));
            }
          }
          continue;
        }
        return (result = this.result(outcome, failures));
      }
    } catch (err) {
      if (step) throw LaunchSetupError.from(err, step, os.tmpdir());
      throw err;
    } finally {
      traceMark("agent: stopping");
      await this.group?.stop();
      traceMark("agent: group stopped");
      if (this.store) {
        this.store.broadcast({ type: "finish", outcome: result?.outcome ?? "failed" });
        await this.store.flushed();
        this.store.close();
      }
      await this.etcd?.close(true);
      this.channel?.close();
      this.logs.close();
      this.dir?.remove();
      traceMark("agent: released");
      this.setState("done");
      if (result) this.onEvent({ type: "done", result });
    }
  }

  /** Single node: MASTER_PORT must be free for the workers; a busy one is replaced, and said so. */
  private async pickMasterPort(): Promise<number> {
    const o = this.spec.options;
    if (await portIsFree(o.masterAddr, Number(o.usePort))) return Number(o.usePort);
    const port = await freePort(o.masterAddr);
    this.onEvent({ type: "notice", text: `use_port ${o.usePort} is busy on ${o.masterAddr}; the workers get MASTER_PORT=${port} instead.` });
    return port;
  }

  /** Several nodes: host the store, wait for the other agents, hand them the session and body. */
  private async gatherNodes(): Promise<void> {
    const o = this.spec.options;
    const secret = secretFrom(this.spec.secret);
    refuseShippedSecret(secret, this.spec.payload, this.spec.env ?? {});
    this.dataSecret = secret;
    this.masterPort = Number(o.usePort);
    this.store = new RendezvousStore(secret, o, { onNodeMessage: (_node, m, b) => this.onNodeMessage(m, b) });
    if (usesEtcd(o)) {
      // etcd says where this node's control store is; the store itself listens on a free port of
      // the address the other nodes reach this one by (the route toward etcd).
      const etcd = (this.etcd = new EtcdDirectory(o));
      const host = await localAddressToward(etcdEndpoints(o).hosts[0].replace(/^https?:\/\/\[?|\]?:\d+$/g, ""));
      const port = await freePort(host);
      await this.store.bind(host, port, "--rdzv_endpoint");
      this.reachableHost = host;
      await etcd.publishStore({ host, port, launchId: this.launchId });
      await etcd.watchNodes((nodeId) => this.onNodeLeft(nodeId));
      this.onEvent({ type: "notice", text: `waiting for ${o.numNodes - 1} more node(s) to join through etcd at ${etcd.endpoints} (rdzv_id ${o.rdzvId}); this node's control store is at ${host}:${port}` });
    } else {
      const { host, port, flag } = storeAddress(o);
      await this.store.bind(host, port, flag);
      // c10d names node 0 by --rdzv_endpoint, not --master_addr (which may be left at 127.0.0.1).
      this.reachableHost = host;
      this.onEvent({ type: "notice", text: `waiting for ${o.numNodes - 1} more node(s) to join at ${host}:${port} (${o.rdzvBackend} rendezvous, rdzv_id ${o.rdzvId})` });
    }
    this.joined = await this.store.gather(rdzvSeconds(o, "join_timeout", 600) * 1000, () => this.stopRequested !== null, this.lastCallMs());
    this.announceNodes(null);
  }

  /** --num_nodes MIN:MAX: how long the round stays open for more nodes once MIN have joined. */
  private lastCallMs(): number {
    const o = this.spec.options;
    return o.minNodes != null && o.minNodes < o.numNodes ? rdzvSeconds(o, "last_call_timeout", 30) * 1000 : 0;
  }

  /** The world's nodes; `before`: the nodes of the previous round (the others are marked as joined now). */
  private announceNodes(before: Set<string> | null): void {
    const world = this.formWorld(0);
    const nodes = this.joined.map((n) => `node ${n.nodeRank} (${n.host}, ${n.numProcesses} process${n.numProcesses > 1 ? "es" : ""}${before && !before.has(n.id) ? ", joined now" : ""})`);
    this.onEvent({ type: "notice", text: `${this.joined.length + 1} nodes joined, world size ${world.worldSize}: node 0 (${os.hostname()}, ${this.spec.numProcesses}), ${nodes.join(", ")}` });
  }

  /**
   * etcd, between rounds: nodes that left are dropped (the survivors keep their order, renumbered),
   * and the world forms again from the nodes there now, waiting (join_timeout) until at least MIN
   * (all of num_nodes when it is one number) are there: a node that came back, or a new one, joins.
   */
  private async regather(lostSome: boolean): Promise<void> {
    const o = this.spec.options;
    const store = this.store!;
    const gone = this.joined.filter((n) => n.left);
    for (const n of gone) this.onEvent({ type: "notice", text: `node ${n.nodeRank} (${n.host}) is out of the world.` });
    const before = new Set(this.joined.filter((n) => !n.left).map((n) => n.id));
    store.forget(gone.map((n) => n.id));
    const need = (o.minNodes ?? o.numNodes) - 1;
    if (store.size < need) this.onEvent({ type: "notice", text: `waiting for ${need - store.size} more node(s) to join (rdzv_id ${o.rdzvId}) before the next attempt` });
    this.setState("gathering");
    this.joined = await store.gather(rdzvSeconds(o, "join_timeout", 600) * 1000, () => this.stopRequested !== null, lostSome ? this.lastCallMs() : 0);
    for (const n of this.joined) n.left = false;
    this.announceNodes(before);
  }

  /** Nodes that joined a running elastic launch, waiting for the next round (shown in the restart reason). */
  private grows: string | null = null;

  /** etcd saw a joined node's key go (it ended, or its lease expired: it died or lost the network). */
  private onNodeLeft(nodeId: string): void {
    const node = this.joined.find((n) => n.id === nodeId);
    if (!node || node.left) return;
    node.left = true;
    this.wake?.();
  }

  private formWorld(attempt: number): World {
    const shares = [{ nodeRank: 0, numProcesses: this.spec.numProcesses }, ...this.joined.map((n) => ({ nodeRank: n.nodeRank, numProcesses: n.numProcesses }))];
    return formWorld(this.spec.options, shares, { launchId: this.launchId, attempt, restartCount: this.restartCount, masterPort: this.masterPort });
  }

  private async runAttempt(attempt: number, payloadPath: string): Promise<LaunchOutcome> {
    this.returnValues = [];
    this.rankStates = {};
    this.exchanges.clear();
    for (const n of this.joined) n.outcome = undefined;
    const world = (this.world = this.formWorld(attempt));
    this.store?.welcome(world, this.spec.payload, this.spec.env ?? {});
    this.onEvent({ type: "world", world });
    this.announceLogs(world);
    traceMark("agent: world shown");
    this.group = new WorkerGroup(
      {
        options: this.spec.options, world, nodeRank: 0, payloadPath, cwd: this.spec.payload.cwd, env: this.spec.env,
        dataHost: this.reachableHost ?? (this.spec.options.numNodes > 1 ? this.spec.options.masterAddr : "127.0.0.1"), dataSecret: this.dataSecret,
        execArgv: this.spec.execArgv, stopGraceMs: this.spec.stopGraceMs, mapStack: this.mapStack, clock: this.clock, prestarted: this.spec.prestarted, payload: this.spec.payload,
      },
      this.channel!,
      {
        onEvent: (e) => this.onGroupEvent(e),
        onExchange: (rank, scope, seq, value) => this.onExchange(rank, scope, seq, value),
        onChange: () => this.wake?.(),
      },
    );
    await this.spec.prestarted?.settled?.();
    this.setState("running");
    this.group.start();
    this.store?.start(attempt, this.restartCount, world);
    return this.monitor(attempt);
  }

  /** Checks the world every monitor_interval until it succeeded, failed or was stopped. */
  private async monitor(attempt: number): Promise<LaunchOutcome> {
    const intervalMs = this.spec.options.monitorInterval * 1000;
    const group = this.group!;
    const remotes = this.joined;
    const silentLimitMs = this.store ? rdzvSeconds(this.spec.options, "timeout", 30) * 1000 : Infinity;
    for (;;) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, intervalMs);
      });
      this.wake = null;
      if (group.interruptedBySignal) this.stopRequested ??= "interrupted";
      const now = performance.now();
      const lost = remotes.find((n) => n.outcome?.attempt !== attempt && (n.left || now - n.lastSeen > silentLimitMs));
      if (lost) {
        const how = lost.left ? `left the etcd rendezvous (its lease ended: the agent died or lost the network)` : `stopped answering`;
        this.onEvent({ type: "notice", text: `node ${lost.nodeRank} (${lost.host}) ${how}; treating its ranks as failed.` });
      }
      const remoteFailed = lost || remotes.some((n) => n.outcome?.attempt === attempt && n.outcome.outcome === "failed");
      if (this.stopRequested || group.anyFailed || remoteFailed) {
        this.tellPeersOfFailure(lost);
        if (lost) lost.outcome = { attempt, outcome: "failed", receivedAt: now, failures: [{ rank: lost.rankOffset, nodeRank: lost.nodeRank, exitCode: null, signal: null, error: { ename: "NodeLost", evalue: `node ${lost.nodeRank} ${lost.left ? `(${lost.host}) left the etcd rendezvous (its lease ended)` : "stopped answering"}`, stack: "", phase: "body" } }] };
        if (lost) lost.left = true; // out of the world: the next round (etcd) forms without it
        this.setState("stopping");
        await this.stopWorld(attempt);
        return this.stopRequested ?? "failed";
      }
      // An elastic launch below its maximum admits nodes that joined since: a new round, at once.
      const o = this.spec.options;
      if (this.store && usesEtcd(o) && this.joined.length + 1 < o.numNodes) {
        const waiting = this.store.waiting(this.world!);
        if (waiting.length > 0) {
          this.grows = waiting.map((n) => `node ${n.nodeRank} (${n.host}) joined`).join(", ");
          this.setState("stopping");
          await this.stopWorld(attempt);
          return "failed";
        }
      }
      this.failStaleExchanges(now);
      const remotesDone = remotes.every((n) => n.outcome?.attempt === attempt && n.outcome.outcome === "succeeded");
      if (group.allSucceeded && remotesDone) return "succeeded";
    }
  }

  private async stopWorld(attempt: number): Promise<void> {
    this.store?.broadcast({ type: "stop", attempt });
    await this.group?.stop();
    // Give joined nodes a moment to report how their group ended (their failures belong in the report).
    const deadline = performance.now() + (this.spec.stopGraceMs ?? STOP_GRACE_MS) + REMOTE_REPORT_MS;
    while (this.joined.some((n) => n.outcome?.attempt !== attempt) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  }

  private failuresInOrder(): RankFailure[] {
    const attempt = this.world?.attempt;
    const local = this.group?.failures() ?? [];
    const remote = this.joined.flatMap(({ outcome }) =>
      outcome && outcome.attempt === attempt ? outcome.failures.map((f) => ({ ...f, endedAt: outcome.receivedAt - this.started })) : [],
    );
    return [...local, ...remote].sort((a, b) => (a.endedAt ?? 0) - (b.endedAt ?? 0));
  }

  /**
   * --output_limit: the cell shows this many bytes of the ranks' output; past it, once, a notice
   * names the log folder (--log_dir, or a default one beside the notebook that then receives every
   * line from the start), and the rest goes there only, so the cell ends as soon as the ranks do.
   */
  private withinOutputLimit(text: string): boolean {
    const limit = this.spec.outputLimit ?? 0;
    if (limit <= 0) return true;
    if (this.outputOverLimit) return false;
    this.outputShown += text.length;
    if (this.outputShown <= limit) {
      // What waits in memory for a folder includes output the cell does not show (filtered ranks):
      // past twice the limit it goes to the folder now, and the cell says where.
      if (this.logs.keptBytes > 2 * limit) {
        const dir = this.openDefaultLogs();
        this.onEvent({ type: "notice", text: `the output the cell does not show goes to ${dir ?? "no folder"}/<rank>/stdout.log and stderr.log` });
      }
      return true;
    }
    this.outputOverLimit = true;
    const dir = this.openDefaultLogs();
    const problem = this.logs.takeProblem();
    this.onEvent({
      type: "notice",
      text:
        `the cell has shown ${(limit / 1e6).toFixed(1)} MB of the ranks' output (--output_limit, TSLAUNCH_OUTPUT_LIMIT); the rest goes only to ` +
        (dir && !problem ? `${dir}/<rank>/stdout.log and stderr.log, which hold every line` : `nowhere: ${problem ?? "no log folder"}`),
    });
    return false;
  }

  /** The log folder: --log_dir, or one beside the notebook made now (it gets every line from the start). */
  private openDefaultLogs(): string | null {
    const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*$/, "");
    return this.logs.useDefaultDir(path.join(this.spec.payload.cwd, "tslaunch-logs", `${stamp}-${this.launchId}`));
  }

  /** --log_dir, --redirects, --local_ranks_filter: where this attempt's output goes, said in the cell. */
  private announceLogs(world: World): void {
    const o = this.spec.options;
    const dir = this.logs.startAttempt(world);
    if (dir) {
      const hidden = o.redirects.all !== 0 || Object.keys(o.redirects.byLocalRank).length > 0 ? " (--redirects: some streams only there)" : "";
      this.onEvent({ type: "notice", text: `logs of attempt ${world.attempt}: ${dir}/<rank>/stdout.log and stderr.log${hidden}` });
    }
    const problem = this.logs.takeProblem();
    if (problem) this.onEvent({ type: "notice", text: problem });
    if (o.localRanksFilter) {
      const shown = o.localRanksFilter.join(", ");
      this.onEvent({
        type: "notice",
        text: `showing the output of local rank${o.localRanksFilter.length > 1 ? "s" : ""} ${shown} only (--local_ranks_filter)` + (dir ? "; every rank's is in the log files" : "; add --log_dir to keep the others' output in files"),
      });
    }
  }

  private onGroupEvent(e: GroupEvent): void {
    if (e.type === "result") this.returnValues[e.rank] = decodeResult(e.value);
    else this.forward(e);
  }

  /** A group event of this node or a joined one, on its way to the host. */
  private forward(e: Exclude<GroupEvent, { type: "result" }>): void {
    if (e.type === "state") this.rankStates[e.worker.rank] = e.worker.state;
    if (e.type === "output") {
      this.logs.write(e.rank, e.name, e.text);
      const problem = this.logs.takeProblem();
      if (problem) this.onEvent({ type: "notice", text: problem });
      if (!this.logs.shows(e.rank, e.name)) {
        this.withinOutputLimit(""); // (hidden output waits in memory until a folder exists: bounded too)
        return;
      }
      if (!this.withinOutputLimit(e.text)) return;
    }
    this.onEvent(e);
  }

  private onNodeMessage(m: NodeMessage, binary?: Buffer): void {
    switch (m.type) {
      case "event":
        this.forward(m.event);
        break;
      case "result":
        if (binary) this.returnValues[m.rank] = decodeResult(binary);
        break;
      case "exchange":
        this.onExchange(m.rank, m.scope, m.seq, m.value);
        break;
      case "group":
        this.wake?.();
        break;
      default:
        break;
    }
  }

  /** Exchange `seq` completes once every rank of the world has sent its value; all get every value. */
  private onExchange(rank: number, scope: ExchangeScope, seq: number, value: string): void {
    const key = `${scope}:${seq}`;
    const exchange = this.exchanges.get(key) ?? { scope, seq, since: performance.now(), values: new Map<number, string>() };
    exchange.values.set(rank, value);
    this.exchanges.set(key, exchange);
    if (!this.world || exchange.values.size < this.world.worldSize) return;
    this.exchanges.delete(key);
    const values = Array.from({ length: this.world.worldSize }, (_, r) => exchange.values.get(r) ?? "");
    this.group?.sendToAll({ type: "exchanged", scope, seq, values });
    this.store?.broadcast({ type: "exchanged", scope, seq, values });
  }

  /**
   * A barrier or a collectives' set-up that waited longer than the collective timeout fails on the
   * ranks that arrived, naming those that did not (as torch's barrier does after its timeout).
   */
  private failStaleExchanges(now: number): void {
    const limitMs = this.spec.options.collectiveTimeout * 1000;
    for (const [key, e] of this.exchanges) {
      if (now - e.since < limitMs || !this.world) continue;
      this.exchanges.delete(key);
      const missing = this.world.ranks.map((r) => r.rank).filter((r) => !e.values.has(r));
      const message = { type: "exchange-failed" as const, scope: e.scope, seq: e.seq, missing, waitedMs: now - e.since };
      this.group?.sendToAll(message);
      this.store?.broadcast(message);
    }
  }

  /**
   * A rank died (or a node went silent): the others' collectives fail now with its name, not at the
   * collective timeout. Sent before the world is stopped; ranks that handle it see the error.
   */
  private tellPeersOfFailure(lost: JoinedNode | undefined): void {
    const first = this.failuresInOrder()[0];
    const reason = lost
      ? `node ${lost.nodeRank} (${lost.host}) stopped answering`
      : first ? describeFailure(first) : undefined;
    if (!reason || this.stopRequested) return;
    const rank = lost ? lost.rankOffset : first!.rank;
    const message = { type: "peer-failed" as const, rank, reason };
    this.group?.sendToAll(message);
    this.store?.broadcast(message);
  }
}

/**
 * The session, the body and the extra environment go to every node: a secret written into a cell
 * (`process.env.TSLAUNCH_SECRET = "…"`) would travel with them. Refused, with where to put it instead.
 */
const SETS_SECRET = /process\.env(?:\.TSLAUNCH_SECRET|\[\s*["'`]TSLAUNCH_SECRET["'`]\s*\])\s*=(?!=)/;

function refuseShippedSecret(secret: Buffer, payload: LaunchPayload, env: Record<string, string>): void {
  const text = secret.toString("utf8");
  // A short secret would match ordinary code by chance: then only an assignment gives it away.
  const where = (js: string) => SETS_SECRET.test(js) || (text.length >= 8 && js.includes(text));
  const cell = payload.replay.find((c) => where(c.js));
  const inBody = where(payload.body.js) || (payload.argsV8 !== undefined && Buffer.from(payload.argsV8, "base64").includes(secret));
  const inEnv = text.length >= 8 ? Object.entries(env).find(([, v]) => v.includes(text)) : undefined;
  if (!cell && !inBody && !inEnv) return;
  const place = cell ? `cell [${cell.executionCount}]` : inBody ? "the launched code or its arguments" : `the launch's environment (${inEnv![0]})`;
  throw new RendezvousError(
    `${place} contains the shared secret, and a launch across nodes sends the session to every node: it would travel with it. ` +
      `Set TSLAUNCH_SECRET (or TSLAUNCH_SECRET_FILE, a file holding it) in the environment of the kernel and of every agent instead, ` +
      `then restart the kernel; a cell that must stay can be kept out of the replay with a first line //%tslaunch:no-replay.`,
  );
}

// Rendezvous for launches across nodes. The launching node (node 0: the notebook, or `tslaunch run`)
// hosts the store, a ZeroMQ ROUTER: at master_addr:use_port for `static`, at rdzv_endpoint (default
// port 29400) for `c10d`. Other nodes run `tslaunch agent`, which joins, receives the session and
// the body, runs its workers and streams their events back.
//
// What protects it (docs/decisions.md, "Security model"): the socket is a CURVE server whose key
// pair only holders of the shared secret can derive, so a peer without the secret cannot complete
// the handshake and nothing on the wire is readable; every message is sealed with the secret, a
// nonce the store gave that node for this launch, and a growing sequence number. Anything unsigned,
// forged or replayed is dropped and counted, never answered, and every queue is bounded.
import { randomBytes } from "crypto";
import { readFileSync } from "fs";
import { Router } from "zeromq";
import { curveKeysFromSecret, RendezvousError, usesEtcd, SealedLink, type LaunchOptions, type LaunchPayload, type NodeMessage, type RankFailure, type StoreMessage, type World } from "../contract";
import { SendQueue } from "../channel";

export const DEFAULT_C10D_PORT = 29400;
export const SECRET_ENV = "TSLAUNCH_SECRET";
/** A file holding the secret (its first line), so that it never has to be typed into a notebook. */
export const SECRET_FILE_ENV = "TSLAUNCH_SECRET_FILE";
/** What the store's CURVE key pair is derived for. */
export const STORE_CURVE_PURPOSE = "rendezvous-store";
/** Nonces handed out and not yet used; a node that asks more often only replaces its own. */
const MAX_CHALLENGES = 256;
/** Messages ZeroMQ may hold for the store before it stops reading (TCP pushes back on the sender). */
const RECEIVE_HWM = 10_000;
/** How often gather() looks again while nodes are missing (a join wakes it at once). */
const JOIN_POLL_MS = 100;
/** At the end, how long queued messages to the nodes may take to leave (a peer may be gone). */
const FLUSH_LIMIT_MS = 1000;
/** How long a busy store port is tried again (a store of this machine that was just closed). */
const REBIND_MS = 1000;

/** Where the store listens, from the options. */
export function storeAddress(o: LaunchOptions): { host: string; port: number; flag: string } {
  if (o.rdzvBackend === "c10d") {
    const ep = o.rdzvEndpoint || `${o.masterAddr}:${DEFAULT_C10D_PORT}`;
    const m = /^\[?([^\]]+?)\]?(?::(\d+))?$/.exec(ep.trim());
    if (!m) throw new RendezvousError(`--rdzv_endpoint must be HOST or HOST:PORT, got ${JSON.stringify(ep)}. Example: --rdzv_endpoint 127.0.0.1:29400`);
    return { host: m[1], port: m[2] ? Number(m[2]) : DEFAULT_C10D_PORT, flag: "--rdzv_endpoint" };
  }
  return { host: o.masterAddr, port: Number(o.usePort), flag: "--use_port" };
}

export function secretFrom(explicit: string | undefined, env: NodeJS.ProcessEnv = process.env): Buffer {
  let secret = explicit ?? env[SECRET_ENV];
  const file = env[SECRET_FILE_ENV];
  if (!secret && file) {
    try {
      secret = readFileSync(file, "utf8").split(/\r?\n/)[0].trim();
    } catch (err) {
      throw new RendezvousError(`cannot read the shared secret from ${SECRET_FILE_ENV}=${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}). Point it at a readable file whose first line is the secret.`);
    }
    if (!secret) throw new RendezvousError(`${SECRET_FILE_ENV}=${file} is empty: its first line must be the shared secret.`);
  }
  if (!secret) {
    throw new RendezvousError(
      `a launch across nodes needs a shared secret so that no other peer can join it: set ${SECRET_ENV} or ${SECRET_FILE_ENV} (a file with the secret)` +
        ` in the environment of the kernel and of every agent (the same value on every node), or pass --secret to tslaunch agent / tslaunch run.` +
        ` Do not set it in a notebook cell: cells are sent to every node.`,
    );
  }
  return Buffer.from(secret, "utf8");
}

export interface JoinedNode {
  id: string;
  nodeRank: number;
  numProcesses: number;
  rankOffset: number;
  host: string;
  lastSeen: number;
  /** etcd saw its key go (--rdzv_backend etcd): it is treated as failed at once. */
  left?: boolean;
  /** The node's report for the current attempt, once its group ended. */
  outcome?: { attempt: number; outcome: "succeeded" | "failed" | "stopped"; failures: RankFailure[]; receivedAt: number };
}

/** The store, hosted by node 0 for one launch. */
export class RendezvousStore {
  private readonly socket: Router;
  private readonly outbox: SendQueue;
  private readonly link: SealedLink<NodeMessage, StoreMessage>;
  private closed = false;
  /** Joined nodes by their sender name. */
  readonly nodes = new Map<string, JoinedNode>();
  /** The nonce given to each node that said hello, and the ZeroMQ identity to answer it at. */
  private readonly challenges = new Map<string, string>();
  private readonly identities = new Map<string, Buffer>();
  private joinWaiters: (() => void)[] = [];

  constructor(
    secret: Buffer,
    private readonly o: LaunchOptions,
    private readonly hooks: { onNodeMessage(node: JoinedNode, m: NodeMessage, binary?: Buffer): void },
  ) {
    const keys = curveKeysFromSecret(secret, STORE_CURVE_PURPOSE);
    this.socket = new Router({ linger: 0, receiveHighWaterMark: RECEIVE_HWM, sendHighWaterMark: 0, curveServer: true, curvePublicKey: keys.publicKey, curveSecretKey: keys.secretKey });
    this.outbox = new SendQueue(this.socket);
    this.link = new SealedLink(secret, "store");
  }

  /** Messages dropped because they were not signed with the secret. */
  get refused(): number {
    return this.link.forged;
  }

  /** Signed messages dropped as replays: an old nonce (an earlier launch) or a seq seen before. */
  get replayed(): number {
    return this.link.replayed;
  }

  async bind(host: string, port: number, flag: string): Promise<void> {
    try {
      // The previous launch's store on this port may still be closing: ZeroMQ unbinds in its I/O
      // thread after close() returns. Only that case is retried, briefly.
      for (const deadline = performance.now() + REBIND_MS; ; ) {
        try {
          await this.socket.bind(`tcp://${host}:${port}`);
          break;
        } catch (err) {
          if (!/in use/i.test((err as Error).message) || performance.now() > deadline) throw err;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
    } catch (err) {
      this.socket.close();
      throw new RendezvousError(
        `cannot host the rendezvous store on ${host}:${port} (${(err as Error).message}). The port is busy or the address is not this machine's: ` +
          `pick another with ${flag}${flag === "--use_port" ? " 29501" : " HOST:29401"} on every node.`,
      );
    }
    void this.receive();
  }

  private async receive(): Promise<void> {
    try {
      for await (const [identity, ...frames] of this.socket) {
        // Only `hello` may come without a session; everything else under the nonce given to its sender.
        const opened = this.link.open(frames, (session, sender) => (session === "" ? true : this.challenges.get(sender) === session));
        if (!opened) continue; // unsigned, forged or replayed: dropped and counted, never answered
        const { message: m, session, sender: id } = opened;
        if (m.type === "hello") {
          if (!this.nodes.has(id)) this.challenge(identity, id);
          continue;
        }
        if (session === "") {
          this.link.replayed++; // a signed message that is not hello must carry its nonce
          continue;
        }
        if (m.type === "join") {
          this.onJoin(identity, id, m);
          continue;
        }
        const node = this.nodes.get(id);
        if (!node) continue;
        node.lastSeen = performance.now();
        if (m.type === "group") node.outcome = { attempt: m.attempt, outcome: m.outcome, failures: m.failures, receivedAt: performance.now() };
        this.hooks.onNodeMessage(node, m, opened.binary);
      }
    } catch (err) {
      if (!this.closed) throw err;
    }
  }

  private challenge(identity: Buffer, id: string): void {
    if (!this.challenges.has(id) && this.challenges.size >= MAX_CHALLENGES) {
      const oldest = this.challenges.keys().next().value!;
      this.challenges.delete(oldest);
      this.identities.delete(oldest);
    }
    const nonce = randomBytes(16).toString("hex");
    this.challenges.set(id, nonce);
    this.identities.set(id, identity);
    this.send(id, { type: "challenge", nonce }, "");
  }

  private onJoin(identity: Buffer, id: string, m: Extract<NodeMessage, { type: "join" }>): void {
    this.identities.set(id, identity);
    const refuse = (reason: string, fatal = false) => this.send(id, { type: "refused", reason, fatal });
    if (this.nodes.has(id)) return; // a repeated join while the welcome was on its way
    if (m.rdzvId !== this.o.rdzvId) return refuse(`rdzv_id ${JSON.stringify(m.rdzvId)} does not match this launch's ${JSON.stringify(this.o.rdzvId)}`, true);
    if (this.nodes.size >= this.o.numNodes - 1) return refuse(`the launch already has its ${this.o.numNodes} nodes`);
    const taken = new Set([0, ...[...this.nodes.values()].map((n) => n.nodeRank)]);
    let nodeRank: number;
    if (usesEtcd(this.o) && m.nodeRank !== null && taken.has(m.nodeRank) && m.nodeRank >= 1) {
      // etcd: the join order asked for a rank a node of an earlier round keeps: the lowest free one.
      nodeRank = 1;
      while (taken.has(nodeRank)) nodeRank++;
    } else if (this.o.rdzvBackend === "static" || (usesEtcd(this.o) && m.nodeRank !== null)) {
      if (m.nodeRank === null || m.nodeRank < 1 || m.nodeRank >= this.o.numNodes || taken.has(m.nodeRank)) {
        return refuse(
          usesEtcd(this.o)
            ? `node_rank ${m.nodeRank} is not free (etcd join order, or --node_rank): node ranks go from 1 to ${this.o.numNodes - 1}`
            : `node_rank ${m.nodeRank} is not free: static rendezvous needs a distinct --node_rank from 1 to ${this.o.numNodes - 1} on each joining node`,
        );
      }
      nodeRank = m.nodeRank;
    } else {
      nodeRank = 1;
      while (taken.has(nodeRank)) nodeRank++; // c10d: node ranks in join order
    }
    this.nodes.set(id, { id, nodeRank, numProcesses: m.numProcesses, rankOffset: 0, host: m.host, lastSeen: performance.now() });
    for (const w of this.joinWaiters.splice(0)) w();
  }

  /**
   * Waits until every node joined (join_timeout); resolves to the joined nodes (not node 0). With
   * `--num_nodes MIN:MAX` the round closes at MAX nodes, or `lastCallMs` after MIN had joined.
   */
  async gather(joinTimeoutMs: number, interrupted: () => boolean, lastCallMs = 0): Promise<JoinedNode[]> {
    const deadline = performance.now() + joinTimeoutMs;
    const min = (this.o.minNodes ?? this.o.numNodes) - 1;
    let lastCallEnds = Infinity;
    while (this.nodes.size < this.o.numNodes - 1) {
      if (interrupted()) throw new RendezvousError("interrupted while waiting for the other nodes to join");
      if (this.nodes.size >= min) {
        if (lastCallEnds === Infinity) lastCallEnds = performance.now() + lastCallMs;
        if (performance.now() >= lastCallEnds) break;
      }
      if (performance.now() > deadline) {
        throw new RendezvousError(
          `only ${this.nodes.size + 1} of ${min + 1 < this.o.numNodes ? `at least ${min + 1}` : this.o.numNodes} nodes joined within join_timeout (${joinTimeoutMs / 1000} s). ` +
            `Start \`tslaunch agent\` on the other nodes with the same ${this.o.rdzvBackend === "static" ? "--master_addr/--use_port" : `--rdzv_backend ${this.o.rdzvBackend} --rdzv_endpoint`}, --rdzv_id and secret, or raise --rdzv_conf join_timeout=SECONDS.`,
        );
      }
      await new Promise<void>((resolve) => {
        this.joinWaiters.push(resolve);
        setTimeout(resolve, JOIN_POLL_MS);
      });
    }
    return [...this.nodes.values()].sort((a, b) => a.nodeRank - b.nodeRank);
  }

  /** Hands every joined node its place in the world, the session and the body. */
  /** Sends the session to every node of `world` that has not had it yet. */
  welcome(world: World, payload: LaunchPayload, env: Record<string, string>): void {
    for (const n of this.nodes.values()) {
      const first = world.ranks.find((r) => r.nodeRank === n.nodeRank);
      if (!first) continue; // joined after the round closed: welcomed at the next one
      n.rankOffset = first.rank;
      if (this.welcomed.has(n.id)) continue;
      this.welcomed.add(n.id);
      this.send(n.id, { type: "welcome", nodeRank: n.nodeRank, numNodes: world.numNodes, rankOffset: n.rankOffset, worldSize: world.worldSize, options: this.o, payload, env });
    }
  }

  private readonly welcomed = new Set<string>();

  /** Starts an attempt on every node of `world`, each told its node rank (ranks are renumbered when nodes leave). */
  start(attempt: number, restartCount: number, world: World): void {
    for (const n of this.nodes.values()) {
      if (world.ranks.some((r) => r.nodeRank === n.nodeRank)) this.send(n.id, { type: "start", attempt, restartCount, world, nodeRank: n.nodeRank });
    }
  }

  /** How many nodes (not node 0) have joined. */
  get size(): number {
    return this.nodes.size;
  }

  /** Nodes that joined but are not in `world` (they wait for the next round). */
  waiting(world: World): JoinedNode[] {
    return [...this.nodes.values()].filter((n) => !world.ranks.some((r) => r.nodeRank === n.nodeRank));
  }

  /** Drops a node that failed or left (its rank frees up); survivors are renumbered 1..k, keeping their order. */
  forget(ids: string[]): void {
    for (const id of ids) {
      this.nodes.delete(id);
      this.welcomed.delete(id);
    }
    [...this.nodes.values()].sort((a, b) => a.nodeRank - b.nodeRank).forEach((n, i) => (n.nodeRank = i + 1));
  }

  /** A sealed message to one node, under the nonce it joined with (`""` only for the challenge). */
  send(id: string, message: StoreMessage, session = this.challenges.get(id) ?? ""): void {
    const identity = this.identities.get(id);
    if (identity) this.push([identity, ...this.link.seal(message, session)]);
  }

  broadcast(message: StoreMessage): void {
    for (const id of this.nodes.keys()) this.send(id, message);
  }

  private push(frames: Buffer[]): void {
    this.outbox.push(frames);
  }

  /** Resolves once everything queued was handed to ZeroMQ (at most 1 s: a peer may be gone). */
  async flushed(): Promise<void> {
    await Promise.race([this.outbox.flushed(), new Promise((r) => setTimeout(r, FLUSH_LIMIT_MS).unref())]);
  }

  close(): void {
    this.closed = true;
    this.outbox.close();
    this.socket.close();
  }
}

/** Seconds from rdzv_conf, with torch's defaults. */
export function rdzvSeconds(o: LaunchOptions, key: "join_timeout" | "last_call_timeout" | "timeout", fallback: number): number {
  const raw = o.rdzvConf[key];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) {
    throw new RendezvousError(`--rdzv_conf ${key} must be a number of seconds greater than 0, got ${JSON.stringify(raw)}. Example: --rdzv_conf ${key}=60`);
  }
  return n;
}

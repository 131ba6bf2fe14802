// `tslaunch agent`: joins a launch hosted by node 0 (a notebook cell or `tslaunch run` with
// --num_nodes > 1), runs this node's workers for every attempt, and streams their output, states,
// results and barriers back over ZeroMQ. It serves one launch after another until stopped.
import { curveKeyPair, Dealer } from "zeromq";
import { randomBytes } from "crypto";
import { existsSync } from "fs";
import os from "os";
import path from "path";
import { channelEndpoint, createLaunchDir, LogChannel, SendQueue, type LaunchDir } from "../channel";
import { curveKeysFromSecret, SealedLink, usesEtcd, writePayload, type LaunchOptions, type NodeMessage, type StoreMessage, type World } from "../contract";
import { createStackMapper, WorkerGroup } from "../group";
import { EtcdDirectory, etcdEndpoints, localAddressToward, rdzvSeconds, STORE_CURVE_PURPOSE, storeAddress } from "../rendezvous";

export interface NodeAgentSpec {
  /** How to reach the store: the same flags node 0 was given. */
  options: LaunchOptions;
  numProcesses: number;
  secret: Buffer;
  /** Stop after one launch instead of serving the next. */
  once?: boolean;
  log(line: string): void;
}

const HEARTBEAT_MS = 1000;
const JOIN_RETRY_MS = 1000;
/**
 * Failed CURVE handshakes, without one that succeeded, after which the agent gives up: the store
 * derives its key from its secret, so a node with another secret can never complete one.
 */
const HANDSHAKE_FAILURES_FATAL = 3;
/** How long a closing connection to the store may still deliver the last reports. */
const LINGER_MS = 1000;

export class NodeAgent {
  private stopped = false;
  private socket?: Dealer;
  private etcd?: EtcdDirectory;
  private current?: { dir: LaunchDir; channel: LogChannel; group?: WorkerGroup };

  /** This node's address as node 0 sees it: the ranks' data plane listens there. */
  private dataHost = "127.0.0.1";

  constructor(private readonly spec: NodeAgentSpec) {}

  stop(): void {
    this.stopped = true;
    this.current?.group?.killSync();
    this.current?.dir.remove();
    this.socket?.close();
    void this.etcd?.close(false);
  }

  /** Serves launches until stopped (or after one with `once`). Resolves with the last outcome. */
  async serve(): Promise<string> {
    let last = "none";
    while (!this.stopped) {
      last = await this.serveOne();
      if (this.spec.once || last === "refused") break;
    }
    return last;
  }

  private async serveOne(): Promise<string> {
    const { options, secret, log } = this.spec;
    const nodeId = `node-${randomBytes(6).toString("hex")}`;
    let host: string;
    let port: number;
    /** etcd: this node's rank in join order, unless --node_rank gave one (node 0 is the launching node). */
    let etcdRank: number | null = null;
    const etcd = usesEtcd(options) ? (this.etcd = new EtcdDirectory(options)) : undefined;
    if (etcd) {
      try {
        this.dataHost = await localAddressToward(etcdEndpoints(options).hosts[0].replace(/^https?:\/\/\[?|\]?:\d+$/g, ""));
        await etcd.register(nodeId, { host: os.hostname(), numProcesses: this.spec.numProcesses });
        log(`registered with etcd at ${etcd.endpoints} (rdzv_id ${options.rdzvId}); waiting for the launch`);
        ({ host, port } = await etcd.waitForStore(rdzvSeconds(options, "join_timeout", 600) * 1000, () => this.stopped));
        etcdRank = options.nodeRank >= 1 ? options.nodeRank : await etcd.joinOrder(nodeId);
      } catch (err) {
        await etcd.close(false);
        throw err;
      }
    } else {
      ({ host, port } = storeAddress(options));
      this.dataHost = await localAddressToward(host);
    }
    const mine = curveKeyPair();
    const socket = new Dealer({
      routingId: nodeId, linger: LINGER_MS, sendHighWaterMark: 0, receiveHighWaterMark: 0,
      curveServerKey: curveKeysFromSecret(secret, STORE_CURVE_PURPOSE).publicKey, curvePublicKey: mine.publicKey, curveSecretKey: mine.secretKey,
    });
    this.socket = socket;
    socket.connect(`tcp://${host}:${port}`);
    const queue = new SendQueue(socket);
    const link = new SealedLink<StoreMessage, NodeMessage>(secret, nodeId);
    /** The store's nonce for this launch: every message after `hello` is sealed under it. */
    let nonce = "";
    const send = (m: NodeMessage, binary?: Buffer) => queue.push(link.seal(m, nonce, binary));
    // Sent under the current nonce (or none yet); the store answers with a fresh challenge until joined.
    const hello = () => send({ type: "hello" });
    log(`joining ${options.rdzvBackend} rendezvous at ${host}:${port} (rdzv_id ${options.rdzvId}) with ${this.spec.numProcesses} process(es)`);
    hello();
    let welcomed = false;
    const joinTimer = setInterval(() => (welcomed ? undefined : hello()), JOIN_RETRY_MS);
    const heartbeat = setInterval(() => welcomed && send({ type: "heartbeat" }), HEARTBEAT_MS);
    const handshake = watchHandshakes(socket, () => {
      log(
        `refused by the store: the encrypted handshake with ${host}:${port} failed ${HANDSHAKE_FAILURES_FATAL} times. This node's secret ` +
          `(TSLAUNCH_SECRET, TSLAUNCH_SECRET_FILE or --secret) differs from node 0's, or what listens there is not a tslaunch store.`,
      );
      socket.linger = 0; // the hellos still queued for a store that will never take them
      socket.close(); // ends the receive loop below
    });
    let welcome: Extract<StoreMessage, { type: "welcome" }> | undefined;
    let payloadPath = "";
    let outcome = "closed";
    let lastRefusal = "";
    try {
      for await (const frames of socket) {
        // The challenge (and a refusal of a hello) come before the nonce; everything else under it.
        const decoded = link.open(frames, (session, sender) => sender === "store" && (session === "" || session === nonce));
        if (!decoded) continue;
        if (decoded.session === "" && decoded.message.type !== "challenge" && decoded.message.type !== "refused") continue;
        if (decoded.message.type === "challenge") {
          if (welcomed) continue;
          nonce = decoded.message.nonce;
          send({ type: "join", rdzvId: options.rdzvId, nodeRank: options.rdzvBackend === "static" ? options.nodeRank : etcdRank, numProcesses: this.spec.numProcesses, host: os.hostname() });
          continue;
        }
        if (decoded.message.type === "refused") {
          const refused = decoded.message;
          if (refused.fatal) {
            log(`refused by the store: ${refused.reason}`);
            return "refused";
          }
          // E.g. the previous launch's store, still closing: keep joining until the next one is up.
          if (refused.reason !== lastRefusal) log(`not admitted yet (${refused.reason}); retrying`);
          lastRefusal = refused.reason;
          // A node registered before this one may have gone: the join order is read again.
          if (etcd && options.nodeRank < 1) void etcd.joinOrder(nodeId).then((r) => (etcdRank = r), () => undefined);
          continue;
        }
        const m = decoded.message;
        if (m.type === "welcome") {
          welcomed = true;
          welcome = m;
          const dir = await createLaunchDir();
          const channel = await LogChannel.open(channelEndpoint(dir), randomBytes(32), (cm) => this.current?.group?.onChannelMessage(cm));
          this.current = { dir, channel };
          // The notebook's folder may not exist here: bare require() resolves from this agent's folder.
          const payload = { ...m.payload, cwd: existsSync(m.payload.cwd) ? m.payload.cwd : process.cwd() };
          payloadPath = path.join(dir.path, "payload.json");
          writePayload(payloadPath, payload);
          log(`joined as node ${m.nodeRank} of ${m.numNodes}: ranks ${m.rankOffset}..${m.rankOffset + this.spec.numProcesses - 1} of ${m.worldSize}`);
        } else if (m.type === "start" && welcome && this.current) {
          await this.current.group?.stop();
          if (m.nodeRank !== undefined && m.nodeRank !== welcome.nodeRank) {
            log(`now node ${m.nodeRank} of ${m.world.numNodes} (the world changed)`);
            welcome = { ...welcome, nodeRank: m.nodeRank };
          }
          this.startGroup(welcome, payloadPath, m.attempt, m.world, send);
        } else if (m.type === "exchanged" || m.type === "exchange-failed" || m.type === "peer-failed") {
          this.current?.group?.sendToAll(m);
        } else if (m.type === "stop") {
          await this.current?.group?.stop();
        } else if (m.type === "finish") {
          outcome = m.outcome;
          log(`launch finished: ${m.outcome}`);
          return outcome;
        }
      }
      return handshake.failed ? "refused" : outcome;
    } finally {
      handshake.stop();
      clearInterval(joinTimer);
      clearInterval(heartbeat);
      await this.current?.group?.stop();
      this.current?.channel.close();
      this.current?.dir.remove();
      this.current = undefined;
      socket.close();
      await etcd?.close(false);
      this.etcd = undefined;
    }
  }

  private startGroup(
    welcome: Extract<StoreMessage, { type: "welcome" }>,
    payloadPath: string,
    attempt: number,
    world: World,
    send: (m: NodeMessage, binary?: Buffer) => void,
  ): void {
    const current = this.current!;
    const started = performance.now();
    let reported = false;
    const group = new WorkerGroup(
      {
        options: welcome.options, world, nodeRank: welcome.nodeRank, payloadPath, cwd: process.cwd(), mapStack: createStackMapper(welcome.payload), env: welcome.env,
        dataHost: this.dataHost, dataSecret: this.spec.secret, clock: () => performance.now() - started,
      },
      current.channel,
      {
        onEvent: (e) => (e.type === "result" ? send({ type: "result", rank: e.rank }, e.value) : send({ type: "event", event: e })),
        onExchange: (rank, scope, seq, value) => send({ type: "exchange", rank, scope, seq, value }),
        onChange: () => {
          if (reported) return;
          if (group.anyFailed) {
            reported = true;
            void group.stop().then(() => send({ type: "group", attempt, outcome: "failed", failures: group.failures() }));
          } else if (group.allSucceeded) {
            reported = true;
            send({ type: "group", attempt, outcome: "succeeded", failures: [] });
          } else if (group.allClosed) {
            reported = true;
            send({ type: "group", attempt, outcome: "stopped", failures: group.failures() });
          }
        },
      },
    );
    current.group = group;
    group.start();
  }
}

/**
 * Calls `onFatal` once the CURVE handshake failed HANDSHAKE_FAILURES_FATAL times without ever
 * succeeding. A store that is not up yet refuses the TCP connection instead: that is retried quietly.
 */
function watchHandshakes(socket: Dealer, onFatal: () => void): { readonly failed: boolean; stop(): void } {
  let failures = 0;
  let succeeded = false;
  let stopped = false;
  const state = {
    failed: false,
    stop: () => {
      stopped = true;
    },
  };
  void (async () => {
    try {
      for await (const event of socket.events) {
        if (stopped) return;
        if (event.type === "handshake") succeeded = true;
        else if (event.type.startsWith("handshake:error") && !succeeded && ++failures >= HANDSHAKE_FAILURES_FATAL) {
          state.failed = true;
          onFatal();
          return;
        }
      }
    } catch {
      // the socket was closed
    }
  })();
  return state;
}

// Signed point-to-point messages between ranks on different nodes, over ZeroMQ TCP.
//
// Each rank binds one PULL socket on its node's host (random port) and connects one PUSH socket to
// every remote rank's endpoint. Received messages are verified (frame.ts), then parked in a mailbox
// keyed by (sender, collective seq, tag) until a collective asks for them: messages of a later
// collective may arrive early, and a forged or replayed one is dropped without a trace in the data.
//
// The sockets speak CURVE: the receiving key pair is derived from the launch's collective key, so
// only ranks of this launch can connect, and the data between nodes is encrypted on the wire.
//
// zeromq.js resolves send() when the message is queued and may keep a reference to the buffer rather
// than copy it, so callers hand over buffers they never touch again (see NodeLeaders).
import { curveKeyPair, Pull, Push } from "zeromq";
import { curveKeysFromSecret } from "../contract";
import { openFrame, sealFrame } from "./frame";
import type { OpContext } from "./op-context";

interface Peer {
  socket: Push;
  counter: number;
  queue: Buffer[][];
  draining: boolean;
  /** Resolved when the queue is empty (everything handed to ZeroMQ). */
  idle: (() => void)[];
}

interface Waiter {
  keys: string[];
  got: (Buffer | undefined)[];
  remaining: number;
  resolve(bufs: Buffer[]): void;
}

const key = (from: number, seq: number, tag: string) => `${from}/${seq}/${tag}`;

/** Pending messages for the peer when close() is called: give them this long to leave. */
const LINGER_MS = 2000;
const MESH_CURVE_PURPOSE = "collectives-mesh";

export class RemoteMesh {
  private readonly peers = new Map<number, Peer>();
  private readonly lastCounter = new Map<number, number>();
  private readonly mailbox = new Map<string, Buffer>();
  private readonly waiting = new Map<string, Waiter>();
  private closed = false;
  /** Messages dropped for a bad signature, wrong recipient, or replayed counter. */
  dropped = 0;

  private constructor(
    private readonly pull: Pull,
    readonly endpoint: string,
    private readonly rank: number,
    private readonly secret: Buffer,
    private readonly remoteRanks: Set<number>,
  ) {
    void this.receiveLoop();
  }

  /**
   * Binds this rank's receiving socket on `host` (a free port). `remoteRanks` are the ranks it accepts
   * messages from: known up front, because a faster peer may connect and send before this rank has
   * connected its own sockets (dropping those early messages hung the first collective, 1 run in ~10).
   */
  static async bind(host: string, rank: number, secret: Buffer, remoteRanks: number[]): Promise<RemoteMesh> {
    const keys = curveKeysFromSecret(secret, MESH_CURVE_PURPOSE);
    const pull = new Pull({ linger: 0, receiveHighWaterMark: 0, curveServer: true, curvePublicKey: keys.publicKey, curveSecretKey: keys.secretKey });
    const literal = host.includes(":") ? `[${host}]` : host;
    try {
      if (host.includes(":")) pull.ipv6 = true;
      await pull.bind(`tcp://${literal}:*`);
    } catch (err) {
      pull.close();
      throw new Error(`cannot bind the collectives TCP socket on ${host}: ${(err as Error).message}`);
    }
    return new RemoteMesh(pull, pull.lastEndpoint!, rank, secret, new Set(remoteRanks));
  }

  /** Connects to every remote rank (global rank → endpoint). */
  connect(endpoints: Map<number, string>): void {
    const serverKey = curveKeysFromSecret(this.secret, MESH_CURVE_PURPOSE).publicKey;
    for (const [rank, endpoint] of endpoints) {
      const mine = curveKeyPair();
      const socket = new Push({ linger: LINGER_MS, sendHighWaterMark: 0, curveServerKey: serverKey, curvePublicKey: mine.publicKey, curveSecretKey: mine.secretKey });
      if (endpoint.startsWith("tcp://[")) socket.ipv6 = true;
      socket.connect(endpoint);
      this.peers.set(rank, { socket, counter: 0, queue: [], draining: false, idle: [] });
    }
  }

  /** Queues a signed message; `payload` must not be modified afterwards. */
  send(to: number, seq: number, tag: string, payload: Buffer): void {
    const peer = this.peers.get(to);
    if (!peer) throw new Error(`no connection to rank ${to}`);
    peer.counter++;
    peer.queue.push(sealFrame(this.secret, { from: this.rank, to, counter: peer.counter, seq, tag }, payload));
    if (!peer.draining) void this.drain(peer);
  }

  // zeromq.js allows one send in flight per socket; a second one throws "Socket is busy writing".
  private async drain(peer: Peer): Promise<void> {
    peer.draining = true;
    try {
      while (peer.queue.length > 0 && !this.closed) {
        const frames = peer.queue.shift()!;
        try {
          await peer.socket.send(frames);
        } catch {
          if (this.closed) return;
          // A send error on a PUSH with unbounded HWM means the socket is being torn down; the peer
          // will time out or be reported dead by the launcher, which is the error users see.
        }
      }
    } finally {
      peer.draining = false;
      for (const resolve of peer.idle.splice(0)) resolve();
    }
  }

  private async receiveLoop(): Promise<void> {
    while (!this.closed) {
      let frames: Buffer[];
      try {
        frames = await this.pull.receive();
      } catch {
        if (this.closed) return;
        continue;
      }
      const msg = openFrame(this.secret, frames);
      if (!msg || msg.header.to !== this.rank || !this.remoteRanks.has(msg.header.from)) {
        this.dropped++;
        continue;
      }
      const { from, counter, seq, tag } = msg.header;
      if (counter <= (this.lastCounter.get(from) ?? 0)) {
        this.dropped++;
        continue;
      }
      this.lastCounter.set(from, counter);
      this.deliver(key(from, seq, tag), msg.payload);
    }
  }

  private deliver(k: string, payload: Buffer): void {
    const waiter = this.waiting.get(k);
    if (!waiter) {
      this.mailbox.set(k, payload);
      return;
    }
    this.waiting.delete(k);
    waiter.got[waiter.keys.indexOf(k)] = payload;
    if (--waiter.remaining === 0) waiter.resolve(waiter.got as Buffer[]);
  }

  /** Whether (from, seq, tag) has been received and not yet taken. */
  has(from: number, seq: number, tag: string): boolean {
    return this.mailbox.has(key(from, seq, tag));
  }

  /**
   * Takes one message from each `from` for (seq, tag), in the order given. Rejects with `onTimeout`
   * (given the ranks still missing) at the context's deadline, or with the abort reason at once.
   */
  receiveAll(froms: number[], seq: number, tag: string, ctx: OpContext, onTimeout: (missing: number[]) => Error): Promise<Buffer[]> {
    if (ctx.aborted) return Promise.reject(ctx.abortReason);
    const keys = froms.map((f) => key(f, seq, tag));
    const got: (Buffer | undefined)[] = keys.map((k) => {
      const b = this.mailbox.get(k);
      if (b) this.mailbox.delete(k);
      return b;
    });
    const remaining = got.filter((b) => b === undefined).length;
    if (remaining === 0) return Promise.resolve(got as Buffer[]);
    return new Promise<Buffer[]>((resolve, reject) => {
      const pending = keys.filter((_, i) => got[i] === undefined);
      const finish = () => {
        clearTimeout(timer);
        unsubscribe();
        for (const k of pending) this.waiting.delete(k);
      };
      const waiter: Waiter = {
        keys,
        got,
        remaining,
        resolve: (bufs) => {
          finish();
          resolve(bufs);
        },
      };
      for (const k of pending) this.waiting.set(k, waiter);
      const timer = setTimeout(() => {
        finish();
        reject(onTimeout(froms.filter((_, i) => got[i] === undefined)));
      }, Math.max(0, ctx.deadline - performance.now()));
      const unsubscribe = ctx.onAbort((reason) => {
        finish();
        reject(reason);
      });
    });
  }

  /** Remote ranks (of `froms`) whose (seq, tag) message has not arrived yet. */
  missing(froms: number[], seq: number, tag: string): number[] {
    return froms.filter((f) => !this.mailbox.has(key(f, seq, tag)));
  }

  /**
   * Closes the sockets. Messages still queued (a collective that completed here may not have reached
   * its peers yet) first get up to LINGER_MS to be handed to ZeroMQ, which then keeps them up to
   * LINGER_MS more.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    const busy = [...this.peers.values()].filter((p) => p.draining);
    if (busy.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(busy.map((p) => new Promise<void>((resolve) => p.idle.push(resolve)))),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, LINGER_MS))),
      ]);
      clearTimeout(timer);
    }
    if (this.closed) return;
    this.closed = true;
    for (const peer of this.peers.values()) {
      peer.queue.length = 0;
      peer.socket.close();
    }
    this.pull.close();
    this.mailbox.clear();
  }
}

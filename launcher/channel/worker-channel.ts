// The worker's end of the log channel: a ZeroMQ DEALER to the agent's ROUTER. Output is batched
// (one message per ~10 ms or 256 KiB per stream) because one ZeroMQ message per line is 5-8x slower
// (../shared/anchors, "zeromq PUSH/PULL unbatched").
import { Dealer } from "zeromq";
import { SendQueue } from "../contract";
import { SealedLink, type AgentMessage, type ExchangeScope, type WorkerMessage } from "../contract";

const FLUSH_MS = 10;
const FLUSH_BYTES = 256 * 1024;
/** How long a closing socket may still deliver queued output (the agent acks end of stream first). */
const LINGER_MS = 2000;

/** An exchange some ranks never joined within the collective timeout. */
export class ExchangeTimeout extends Error {
  override name = "ExchangeTimeout";
  constructor(readonly missing: number[], readonly waitedMs: number) {
    super(`${missing.length === 1 ? "rank" : "ranks"} ${missing.join(", ")} did not arrive within ${Math.round(waitedMs / 1000)} s`);
  }
}

export class WorkerChannel {
  private readonly socket: Dealer;
  private readonly queue: SendQueue;
  private buffers: Record<"stdout" | "stderr", string[]> = { stdout: [], stderr: [] };
  private bufferedBytes = 0;
  private flushTimer: NodeJS.Timeout | null = null;
  /** Which stream was written last: keeps stdout/stderr interleaving close to the write order. */
  private lastStream: "stdout" | "stderr" | null = null;

  private acked: () => void = () => {};
  private readonly ackReceived = new Promise<void>((resolve) => (this.acked = resolve));
  /** Exchanges waiting for the agent, by "scope:seq". */
  private readonly exchanges = new Map<string, { resolve(values: string[]): void; reject(err: Error): void }>();
  private readonly exchangeSeq: Record<ExchangeScope, number> = { barrier: 0, collectives: 0 };

  private readonly link: SealedLink<AgentMessage, WorkerMessage>;

  constructor(endpoint: string, key: Buffer, routingId: string) {
    this.link = new SealedLink(key, routingId);
    // linger: zeromq.js still drops queued messages on exit (the anchors saw 5-10 % lost over ipc),
    // which is why `finish()` waits for the agent's ack instead of trusting linger.
    this.socket = new Dealer({ routingId, linger: LINGER_MS, sendHighWaterMark: 0 });
    this.socket.connect(endpoint);
    this.queue = new SendQueue(this.socket);
    void this.receive();
  }

  /**
   * An all-gather of one string per rank through the agent: resolves to every rank's value,
   * rank-ordered, once every rank of the world has called it (the n-th call meets the others' n-th).
   */
  exchange(scope: ExchangeScope, value: string): Promise<string[]> {
    const seq = ++this.exchangeSeq[scope];
    const done = new Promise<string[]>((resolve, reject) => this.exchanges.set(`${scope}:${seq}`, { resolve, reject }));
    this.send({ type: "exchange", scope, seq, value });
    return done;
  }

  /** Exchanges still waiting: ZeroMQ's sockets are invisible to Node's active-resource list. */
  get pendingExchanges(): number {
    return this.exchanges.size;
  }

  /** Called for messages the channel itself does not handle (the collectives' peer-failed). */
  onAgentMessage: (m: AgentMessage) => void = () => {};

  private async receive(): Promise<void> {
    try {
      for await (const frames of this.socket) {
        const decoded = this.link.open(frames, (session, sender) => session === "" && sender === "agent");
        if (!decoded) continue;
        const m = decoded.message;
        if (m.type === "ack") this.acked();
        else if (m.type === "exchanged" || m.type === "exchange-failed") {
          const waiting = this.exchanges.get(`${m.scope}:${m.seq}`);
          this.exchanges.delete(`${m.scope}:${m.seq}`);
          if (m.type === "exchanged") waiting?.resolve(m.values);
          else waiting?.reject(new ExchangeTimeout(m.missing, m.waitedMs));
        } else this.onAgentMessage(m);
      }
    } catch {
      // socket closed
    }
  }

  send(message: WorkerMessage, binary?: Buffer): void {
    this.flushStreams();
    this.enqueue(this.link.seal(message, "", binary));
  }

  /** Called for every write to process.stdout / process.stderr. */
  write(name: "stdout" | "stderr", text: string): void {
    if (!text) return;
    if (this.lastStream && this.lastStream !== name) this.flushStreams();
    this.lastStream = name;
    this.buffers[name].push(text);
    this.bufferedBytes += text.length;
    if (this.bufferedBytes >= FLUSH_BYTES) this.flushStreams();
    else if (!this.flushTimer) this.flushTimer = setTimeout(() => this.flushStreams(), FLUSH_MS);
  }

  flushStreams(): void {
    this.takeBuffered((name, text) => this.enqueue(this.link.seal({ type: "stream", name, text })));
  }

  /**
   * Hands the text not yet sent to `write` (the process's own stdout/stderr pipes, synchronously),
   * stream by stream in the order written. Called before a child process starts: a child that
   * inherits the rank's stdout writes to that pipe, so the rank's earlier text must be there first.
   */
  handOff(write: (name: "stdout" | "stderr", text: string) => void): void {
    this.takeBuffered(write);
  }

  /** Empties the batch, one call per stream that holds text (at most one: a switch of stream flushes the other). */
  private takeBuffered(each: (name: "stdout" | "stderr", text: string) => void): void {
    if (this.flushTimer) {
      clearTimeout(this.flushTimer);
      this.flushTimer = null;
    }
    for (const name of ["stdout", "stderr"] as const) {
      const parts = this.buffers[name];
      if (parts.length === 0) continue;
      this.buffers[name] = [];
      each(name, parts.join(""));
    }
    this.bufferedBytes = 0;
  }

  /** Sends end-of-stream and waits until the agent acknowledged everything (or the timeout). */
  async finish(timeoutMs = 10_000): Promise<boolean> {
    this.send({ type: "eos" });
    await this.queue.flushed();
    const acked = await Promise.race([
      this.ackReceived.then(() => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), timeoutMs).unref()),
    ]);
    this.socket.close();
    return acked;
  }

  private enqueue(frames: Buffer[]): void {
    this.queue.push(frames);
  }
}

// The agent's end of the log channel: one ZeroMQ ROUTER in the launch folder that every worker's
// DEALER connects to. It verifies each message's seal (forged, unsigned or replayed ones are
// dropped and counted: contract/sealed-link.ts) and acknowledges a worker's end of stream so the worker can exit without losing
// queued output.
import { Router } from "zeromq";
import { SendQueue } from "../contract";
import { SealedLink, type AgentMessage, type WorkerMessage } from "../contract";

export interface ChannelMessage {
  /** The worker's routing id, e.g. "rank2-pid1234". */
  from: string;
  message: WorkerMessage;
  binary?: Buffer;
}

export class LogChannel {
  private readonly socket = new Router({ linger: 0, receiveHighWaterMark: 0 });
  // Acks and barrier releases; a worker that is gone is simply not answered.
  private readonly outbox = new SendQueue(this.socket);
  private closed = false;
  private readonly link: SealedLink<WorkerMessage, AgentMessage>;

  /** Where workers connect: the bound address (a "tcp://127.0.0.1:*" request gets its real port). */
  endpoint: string;

  private constructor(endpoint: string, private readonly key: Buffer) {
    this.endpoint = endpoint;
    this.link = new SealedLink(key, "agent");
  }

  /** Messages dropped because their signature was missing or wrong, or they were replayed. */
  get dropped(): number {
    return this.link.forged + this.link.replayed;
  }

  /** The key workers sign with (handed to them in their environment). */
  get keyHex(): string {
    return this.key.toString("hex");
  }

  /** Binds before the receive loop starts, so no early message is missed. */
  static async open(endpoint: string, key: Buffer, onMessage: (m: ChannelMessage) => void): Promise<LogChannel> {
    const channel = new LogChannel(endpoint, key);
    try {
      await channel.socket.bind(endpoint);
    } catch (err) {
      channel.close();
      throw new Error(`cannot open the launch's log channel at ${endpoint} (${(err as Error).message})`);
    }
    channel.endpoint = channel.socket.lastEndpoint ?? endpoint;
    void channel.receive(onMessage);
    return channel;
  }

  private async receive(onMessage: (m: ChannelMessage) => void): Promise<void> {
    try {
      for await (const [identity, ...frames] of this.socket) {
        // Each worker seals as its routing id: a message another connection replays is refused too.
        const decoded = this.link.open(frames, (session, sender) => session === "" && sender === identity.toString());
        if (!decoded) continue;
        if (decoded.message.type === "eos") this.send(identity, this.link.seal({ type: "ack" }));
        onMessage({ from: identity.toString(), message: decoded.message, binary: decoded.binary });
      }
    } catch (err) {
      if (!this.closed) throw err;
    }
  }

  /** A message to one worker, by its routing id. */
  sendTo(routingId: string, message: AgentMessage): void {
    this.send(Buffer.from(routingId), this.link.seal(message));
  }

  private send(to: Buffer, frames: Buffer[]): void {
    this.outbox.push([to, ...frames]);
  }

  close(): void {
    this.closed = true;
    this.outbox.close();
    this.socket.close();
  }
}

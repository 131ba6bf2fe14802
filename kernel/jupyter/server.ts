// The kernel's five ZeroMQ sockets. Every socket is bound before its receive loop starts, and every
// send goes through a SendQueue (zeromq.js allows one pending send per socket). stdin and the
// heartbeat live in a thread of their own (stdin-channel.ts), so that a busy cell blocks neither.
import { Publisher, Router } from "zeromq";
import { StdinChannel } from "./stdin-channel";
import { decode, encode, endpoint, newHeader, WireError, type ConnectionInfo, type IopubContents, type JupyterMessage, type ReplyContents } from "./wire";
import { SendQueue } from "../../launcher/contract";

export type RequestHandler = (msg: JupyterMessage, channel: "shell" | "control") => Promise<void>;

export class KernelServer {
  private readonly shell = new Router({ sendHighWaterMark: 0 });
  private readonly control = new Router({ sendHighWaterMark: 0 });
  // A PUB socket drops messages past its high-water mark (1000 by default) without a word: during
  // a flood that is lost output. No limit: the send queue already holds them in order.
  private readonly iopub = new Publisher({ sendHighWaterMark: 0 });
  /** stdin (prompt()/input()) and the heartbeat, in their own thread. */
  readonly stdin: StdinChannel;
  private readonly queues: Record<"shell" | "control" | "iopub", SendQueue>;
  private closed = false;
  private onShell: RequestHandler = async () => {};
  private onControl: RequestHandler = async () => {};

  constructor(private readonly conn: ConnectionInfo, private readonly log: (s: string) => void) {
    const onError = (err: unknown) => this.log(`send failed: ${String(err)}`);
    this.queues = {
      shell: new SendQueue(this.shell, onError),
      control: new SendQueue(this.control, onError),
      iopub: new SendQueue(this.iopub, onError),
    };
    this.stdin = new StdinChannel(conn);
  }

  /** Binds every socket; requests go to the handlers given now, and to those of a later setHandlers(). */
  async start(onShell: RequestHandler, onControl: RequestHandler): Promise<void> {
    this.setHandlers(onShell, onControl);
    await Promise.all([
      this.shell.bind(endpoint(this.conn, "shell")),
      this.control.bind(endpoint(this.conn, "control")),
      this.iopub.bind(endpoint(this.conn, "iopub")),
      this.stdin.started(),
    ]);
    void this.receive(this.shell, (m) => this.onShell(m, "shell"));
    void this.receive(this.control, (m) => this.onControl(m, "control"));
  }

  setHandlers(onShell: RequestHandler, onControl: RequestHandler): void {
    this.onShell = onShell;
    this.onControl = onControl;
  }

  private async receive(socket: Router, handle: (m: JupyterMessage) => Promise<void>): Promise<void> {
    try {
      for await (const frames of socket) {
        let msg: JupyterMessage;
        try {
          msg = decode(this.conn.key, frames);
        } catch (err) {
          // A message we cannot verify is dropped: the spec says kernels must ignore them.
          if (err instanceof WireError || err instanceof SyntaxError) this.log(`dropped message: ${err.message}`);
          continue;
        }
        await handle(msg).catch((err) => this.log(`handler failed: ${err?.stack ?? err}`));
      }
    } catch (err) {
      if (!this.closed) this.log(`receive loop ended: ${String(err)}`);
    }
  }

  /** A reply on the socket the request came in on. */
  reply<T extends keyof ReplyContents>(channel: "shell" | "control", request: JupyterMessage<unknown>, msgType: T, content: ReplyContents[T]): void {
    this.queues[channel].push(
      encode(this.conn.key, {
        identities: request.identities,
        header: newHeader(msgType, request.header.session),
        parent_header: request.header,
        metadata: {},
        content,
      }),
    );
  }

  publish<T extends keyof IopubContents>(msgType: T, content: IopubContents[T], parent: JupyterMessage<unknown> | null, metadata: Record<string, unknown> = {}): void {
    this.queues.iopub.push(
      encode(this.conn.key, {
        // The topic frame: subscribers take everything, but a topic keeps ZeroMQ's filter happy.
        identities: [Buffer.from(`kernel.${msgType}`)],
        header: newHeader(msgType, parent?.header.session ?? "tslaunch"),
        parent_header: parent?.header ?? {},
        metadata,
        content,
      }),
    );
  }

  /** Resolves once every queued iopub message has been handed to ZeroMQ. */
  iopubFlushed(): Promise<void> {
    return this.queues.iopub.flushed();
  }

  /** Resolves once every queued iopub and reply message has been handed to ZeroMQ. */
  async flushed(): Promise<void> {
    await Promise.all(Object.values(this.queues).map((q) => q.flushed()));
  }

  close(): void {
    this.closed = true;
    for (const socket of [this.shell, this.control, this.iopub]) socket.close();
    this.stdin.close();
  }
}

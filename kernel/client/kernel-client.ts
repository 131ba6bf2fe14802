// A Jupyter client in Node: talks the wire protocol to any kernel over ZeroMQ. Used by
// `tslaunch execute` and by the integration tests of our own kernel.
// Messaging spec: https://jupyter-client.readthedocs.io/en/latest/messaging.html
import { randomUUID } from "crypto";
import { Dealer, Request, Subscriber } from "zeromq";
import { SendQueue } from "../../launcher/api";
import { ConnectionInfo, decode, encode, endpoint, JupyterMessage, newHeader } from "../jupyter/wire";
import type { KernelProcess } from "./kernel-process";
import { NbOutput, OutputArea, OutputChange } from "./render-output";

export interface KernelClientOptions {
  connection: ConnectionInfo;
  /** Interrupts the kernel (for interrupt_mode "signal": SIGINT to its process group). Without it,
   * interrupt() sends a control interrupt_request (interrupt_mode "message"). */
  interrupt?: () => void;
  /** Resolves when the kernel process is gone: pending requests then fail instead of hanging. */
  exited?: Promise<unknown>;
  /** Extra text (e.g. the kernel's stderr) appended to errors about a dead or silent kernel. */
  diagnostics?: () => string;
  /** Answers input() in the kernel; only asked when execute() is called with allowStdin. */
  onInputRequest?: (prompt: string, password: boolean) => string | Promise<string>;
  session?: string;
  username?: string;
}

export interface ExecuteOptions {
  /** Every iopub message of this execution, with what it did to `outputs`. */
  onIOPub?: (msg: JupyterMessage, change: OutputChange) => void;
  /** Collects the outputs; pass one sharing display ids with other cells' areas. */
  outputArea?: OutputArea;
  silent?: boolean;
  storeHistory?: boolean;
  allowStdin?: boolean;
  stopOnError?: boolean;
  userExpressions?: Record<string, string>;
}

export interface ExecuteResult {
  /** The execute_reply; `reply.content.status` is "ok", "error" or "aborted". */
  reply: JupyterMessage;
  /** nbformat outputs: streams merged, clear_output and update_display_data applied. */
  outputs: NbOutput[];
}

export class KernelDiedError extends Error {}
export class ClientClosedError extends Error {}
export class KernelTimeoutError extends Error {}

type Route = (msg: JupyterMessage) => void;

export class KernelClient {
  readonly session: string;
  private readonly key: string;
  private readonly username: string;
  private readonly shell: Dealer;
  private readonly control: Dealer;
  private readonly stdin: Dealer;
  private readonly iopub: Subscriber;
  private readonly hb: Request;
  private readonly queues: Record<"shell" | "control" | "stdin", SendQueue>;
  /** execute/request replies (shell and control), by the request's msg_id. */
  private readonly replyRoutes = new Map<string, Route>();
  /** iopub messages, by parent_header.msg_id. */
  private readonly iopubRoutes = new Map<string, Route>();
  /** Rejecters of every promise still waiting on the kernel; called on close() or kernel death. */
  private readonly waiting = new Set<(err: Error) => void>();
  private failure: Error | undefined;
  private heartbeatChain: Promise<unknown> = Promise.resolve();
  private closed = false;

  /** A client for a kernel we started, wired to its interrupt, exit and diagnostics. */
  static forProcess(proc: KernelProcess, options: Partial<KernelClientOptions> = {}): KernelClient {
    return new KernelClient({
      connection: proc.connection,
      interrupt: proc.interrupt,
      exited: proc.exited,
      diagnostics: proc.diagnostics,
      ...options,
    });
  }

  constructor(private readonly options: KernelClientOptions) {
    const info = options.connection;
    this.key = info.key;
    this.session = options.session ?? randomUUID();
    this.username = options.username ?? "tslaunch";
    // The kernel answers input_request on stdin to the identity that sent execute_request on
    // shell, so both dealers need the same routing id.
    const routingId = this.session;
    this.shell = new Dealer({ linger: 0, routingId });
    this.stdin = new Dealer({ linger: 0, routingId });
    this.control = new Dealer({ linger: 0 });
    // Unlimited: a cell printing in a tight loop must not lose output on our side.
    this.iopub = new Subscriber({ linger: 0, receiveHighWaterMark: 0 });
    // relaxed + correlate: a ping that timed out does not wedge the REQ state machine.
    this.hb = new Request({ linger: 0, relaxed: true, correlate: true });

    this.shell.connect(endpoint(info, "shell"));
    this.control.connect(endpoint(info, "control"));
    this.stdin.connect(endpoint(info, "stdin"));
    this.iopub.connect(endpoint(info, "iopub"));
    this.iopub.subscribe();
    this.hb.connect(endpoint(info, "hb"));

    this.queues = {
      shell: new SendQueue(this.shell),
      control: new SendQueue(this.control),
      stdin: new SendQueue(this.stdin),
    };
    void this.receiveLoop(this.shell, (msg) => this.routeReply(msg));
    void this.receiveLoop(this.control, (msg) => this.routeReply(msg));
    void this.receiveLoop(this.iopub, (msg) => this.routeIOPub(msg));
    void this.receiveLoop(this.stdin, (msg) => void this.answerInput(msg));

    options.exited?.then(() => {
      if (this.closed) return;
      this.fail(new KernelDiedError(this.describe("the kernel process exited")));
    });
  }

  /** Sends a request on shell or control and resolves with its reply. */
  request(
    channel: "shell" | "control",
    msgType: string,
    content: Record<string, unknown>,
    timeoutMs?: number,
  ): Promise<JupyterMessage> {
    return this.waitFor<JupyterMessage>((resolve) => {
      const header = this.send(channel, msgType, content);
      this.replyRoutes.set(header.msg_id, resolve);
      return () => this.replyRoutes.delete(header.msg_id);
    }, timeoutMs && { ms: timeoutMs, what: msgType });
  }

  kernelInfo(timeoutMs?: number): Promise<JupyterMessage> {
    return this.request("shell", "kernel_info_request", {}, timeoutMs);
  }

  complete(code: string, cursorPos: number = code.length, timeoutMs?: number): Promise<JupyterMessage> {
    return this.request("shell", "complete_request", { code, cursor_pos: cursorPos }, timeoutMs);
  }

  inspect(code: string, cursorPos: number = code.length, detailLevel: 0 | 1 = 0, timeoutMs?: number) {
    return this.request("shell", "inspect_request", { code, cursor_pos: cursorPos, detail_level: detailLevel }, timeoutMs);
  }

  isComplete(code: string, timeoutMs?: number): Promise<JupyterMessage> {
    return this.request("shell", "is_complete_request", { code }, timeoutMs);
  }

  /**
   * Runs code. Resolves once BOTH the execute_reply and the iopub `status: idle` for it have
   * arrived: they travel on different sockets, and only after idle are all outputs in.
   */
  execute(code: string, options: ExecuteOptions = {}): Promise<ExecuteResult> {
    const area = options.outputArea ?? new OutputArea();
    return this.waitFor<ExecuteResult>((resolve, reject) => {
      let reply: JupyterMessage | undefined;
      let idle = false;
      let callbackError: unknown;
      const finish = () => {
        if (!reply || !idle) return;
        // A throwing onIOPub still lets the execution run to its end (the kernel is busy anyway);
        // its error is reported then.
        if (callbackError !== undefined) reject(callbackError instanceof Error ? callbackError : new Error(String(callbackError)));
        else resolve({ reply, outputs: area.outputs });
      };
      const header = this.send("shell", "execute_request", {
        code,
        silent: options.silent ?? false,
        store_history: options.storeHistory ?? true,
        user_expressions: options.userExpressions ?? {},
        allow_stdin: options.allowStdin ?? false,
        stop_on_error: options.stopOnError ?? true,
      });
      const id = header.msg_id;
      this.iopubRoutes.set(id, (msg) => {
        const change = area.handle(msg);
        try {
          options.onIOPub?.(msg, change);
        } catch (err) {
          callbackError ??= err;
        }
        if (msg.header.msg_type === "status" && msg.content.execution_state === "idle") {
          idle = true;
          finish();
        }
      });
      this.replyRoutes.set(id, (msg) => {
        reply = msg;
        finish();
      });
      return () => {
        this.iopubRoutes.delete(id);
        this.replyRoutes.delete(id);
      };
    });
  }

  /** Interrupts the running cell; the execute_reply then has status "error". */
  async interrupt(): Promise<void> {
    if (this.options.interrupt) this.options.interrupt();
    else await this.request("control", "interrupt_request", {}, 5000);
  }

  /**
   * Asks the kernel to shut down (control channel) and waits for its process to exit, when the
   * client knows the process. `restart` is only passed on: starting the new process is the
   * caller's job, as with jupyter_client. Resolves with whether the kernel is known to be gone.
   */
  async shutdown(options: { restart?: boolean; timeoutMs?: number } = {}): Promise<{ exited: boolean }> {
    const timeoutMs = options.timeoutMs ?? 5000;
    const exited = this.options.exited?.then(() => true);
    if (this.failure instanceof KernelDiedError) return { exited: true };
    const reply = this.request("control", "shutdown_request", { restart: options.restart ?? false }, timeoutMs)
      // The process may exit before its reply is read; exit is what we wait for anyway.
      .then(() => true, () => false);
    if (!exited) return { exited: await reply };
    const timeout = delay(timeoutMs).then(() => false);
    return { exited: await Promise.race([exited, timeout]) };
  }

  /** One heartbeat ping; true if the kernel echoed it within timeoutMs. */
  heartbeat(timeoutMs = 1000): Promise<boolean> {
    const ping = async () => {
      if (this.closed) return false;
      try {
        this.hb.receiveTimeout = timeoutMs;
        const payload = Buffer.from(randomUUID());
        await this.hb.send(payload);
        const [echo] = await this.hb.receive();
        return echo.equals(payload);
      } catch {
        return false; // timeout (EAGAIN) or closed
      }
    };
    // A REQ socket has one request in flight at a time: chain the pings.
    const result = this.heartbeatChain.then(ping, ping);
    this.heartbeatChain = result;
    return result;
  }

  /**
   * Resolves with a kernel_info_reply once the kernel answers on shell AND we are receiving its
   * iopub messages. PUB/SUB drops what is published before the subscription has propagated (the
   * "slow joiner"), so until an iopub status for one of our kernel_info requests shows up, we
   * keep asking.
   */
  waitForReady(timeoutMs = 60_000): Promise<JupyterMessage> {
    return this.waitFor<JupyterMessage>((resolve) => {
      const sent: string[] = [];
      let reply: JupyterMessage | undefined;
      let statusSeen = false;
      let timer: NodeJS.Timeout | undefined;
      const check = () => {
        if (reply && statusSeen) resolve(reply);
      };
      const attempt = () => {
        const { msg_id } = this.send("shell", "kernel_info_request", {});
        sent.push(msg_id);
        this.replyRoutes.set(msg_id, (msg) => {
          reply ??= msg;
          check();
        });
        this.iopubRoutes.set(msg_id, (msg) => {
          if (msg.header.msg_type === "status") statusSeen = true;
          check();
        });
        // Until the first reply the request sits queued in the dealer anyway: ask rarely. After
        // it, each retry is for the subscription, which joins within milliseconds.
        timer = setTimeout(attempt, reply ? 200 : 1000);
      };
      attempt();
      return () => {
        clearTimeout(timer);
        for (const id of sent) {
          this.replyRoutes.delete(id);
          this.iopubRoutes.delete(id);
        }
      };
    }, { ms: timeoutMs, what: "the kernel to become ready" });
  }

  /** Closes the sockets; receive loops end, and anything still waiting rejects. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.fail(new ClientClosedError("the kernel client was closed"));
    this.closed = true;
    for (const queue of Object.values(this.queues)) queue.close();
    for (const socket of [this.shell, this.control, this.stdin, this.iopub, this.hb]) socket.close();
  }

  private send(channel: "shell" | "control" | "stdin", msgType: string, content: Record<string, unknown>,
               parent: Partial<JupyterMessage["header"]> = {}) {
    const header = newHeader(msgType, this.session, this.username);
    this.queues[channel].push(encode(this.key, { identities: [], header, parent_header: parent, metadata: {}, content }));
    return header;
  }

  /**
   * A promise settled by `start`'s resolve, or rejected on close(), kernel death or timeout;
   * the cleanup `start` returns runs in every case.
   */
  private waitFor<T>(
    start: (resolve: (value: T) => void, reject: (err: Error) => void) => () => void,
    timeout?: { ms: number; what: string } | 0,
  ): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<T>((resolve, reject) => {
      let cleanup = () => {};
      let timer: NodeJS.Timeout | undefined;
      const settle = (fn: () => void) => {
        if (!this.waiting.delete(fail)) return; // already settled
        clearTimeout(timer);
        cleanup();
        fn();
      };
      const fail = (err: Error) => settle(() => reject(err));
      this.waiting.add(fail);
      if (timeout) {
        timer = setTimeout(
          () => fail(new KernelTimeoutError(this.describe(`timed out after ${timeout.ms} ms waiting for ${timeout.what}`))),
          timeout.ms,
        );
      }
      try {
        cleanup = start((value) => settle(() => resolve(value)), fail);
      } catch (err) {
        fail(err instanceof Error ? err : new Error(String(err)));
      }
      // start() may already have settled synchronously; then nobody else runs cleanup.
      if (!this.waiting.has(fail)) cleanup();
    });
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const reject of [...this.waiting]) reject(err);
  }

  private describe(problem: string): string {
    const output = this.options.diagnostics?.().trim();
    return output ? `${problem}; kernel output:\n${output}` : problem;
  }

  private routeReply(msg: JupyterMessage): void {
    const id = msg.parent_header.msg_id;
    if (id) this.replyRoutes.get(id)?.(msg);
  }

  private routeIOPub(msg: JupyterMessage): void {
    const id = msg.parent_header.msg_id;
    if (id) this.iopubRoutes.get(id)?.(msg);
  }

  private async answerInput(msg: JupyterMessage): Promise<void> {
    if (msg.header.msg_type !== "input_request") return;
    let value = "";
    try {
      value = (await this.options.onInputRequest?.(String(msg.content.prompt ?? ""), !!msg.content.password)) ?? "";
    } catch {
      /* an empty answer beats leaving the kernel blocked in input() forever */
    }
    if (!this.closed) this.send("stdin", "input_reply", { value }, msg.header);
  }

  /** Reads until the socket is closed; the async iterator ends cleanly at close(). */
  private async receiveLoop(socket: Dealer | Subscriber, handle: (msg: JupyterMessage) => void): Promise<void> {
    try {
      for await (const frames of socket) {
        let msg: JupyterMessage;
        try {
          msg = decode(this.key, frames as Buffer[]);
        } catch {
          continue; // unsigned or malformed: not from our kernel, ignore it
        }
        handle(msg);
      }
    } catch (err) {
      if (!this.closed) this.fail(err instanceof Error ? err : new Error(String(err)));
    }
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

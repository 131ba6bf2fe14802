// The kernel: the Jupyter protocol around cells. It answers each request; what a cell does is
// run-cell.ts's business (tslab's executor, or a %%launch). Output of any cell reaches iopub through
// a StreamBatcher. Request and reply contents are typed by jupyter/wire.ts.
import { StringDecoder } from "string_decoder";
import { printQuickInfo } from "tslab/dist/inspect";
import * as tslabJupyter from "tslab/dist/jupyter";
import { setLaunchHost, type ActiveLaunchHandle } from "../launcher/api";
import { splitMagicBody } from "./cells/cell-text";
import { isComplete } from "./cells/completeness";
import { KEYBOARD_INTERRUPT, Session } from "./cells/session";
import type { CellOutput, DisplayContent } from "./jupyter/cell-output";
import { codePointsToUtf16, utf16ToCodePoints } from "./jupyter/cursor";
import { KernelServer } from "./jupyter/server";
import { iopubPaceFromEnv, OutputPacer, outputMemoryLimitFromEnv } from "./jupyter/output-pacer";
import type { CompleteReply, InspectReply, JupyterMessage, Request } from "./jupyter/wire";
import { kernelInfo, NO_COMMS, NO_HISTORY } from "./kernel-info";
import { IdleCollector } from "./idle-gc";
import { DeviceGuard } from "./launch/device-guard";
import { KernelLaunchHost } from "./launch/kernel-launch-host";
import { completeMagic, inspectMagic } from "./launch/magic-help";
import { runCell, type CellOutcome } from "./run-cell";
import { createDisplayFunction, ReportedError, StdinNotAllowedError, traceMark, type CellError } from "../launcher/contract";

export class Kernel {
  private readonly server: KernelServer;
  private readonly session: Session;
  private executionCount = 0;
  /** The request whose cell owns output right now (tslab and ipykernel route late output there too). */
  private outputParent: JupyterMessage<unknown> | null = null;
  private readonly pacer: OutputPacer;
  private shellChain: Promise<void> = Promise.resolve();
  /** Execute requests received so far; after an error, ones received before it are aborted. */
  private received = 0;
  private abortBefore = 0;
  /** Shell requests received and not yet answered (0: the kernel is idle). */
  private queuedShell = 0;
  /** Every launch running now: a cell may start several (Promise.all); interrupt stops them all. */
  private readonly activeLaunches = new Set<ActiveLaunchHandle>();
  private readonly guard = new DeviceGuard();
  /** Gives back the TypeScript service's per-cell garbage while the notebook is idle. */
  private readonly idleCollector = new IdleCollector();
  /** The kernel as the host of every launch (%%launch cells and notebookLauncher() calls). */
  private readonly launchHost: KernelLaunchHost;
  private currentCode = "";
  /** The execute_request whose cell runs now (null between cells): prompt()/input() answer to it. */
  private runningRequest: Request<"execute_request"> | null = null;
  /** What prompt()/input() got during the running cell, in order: workers replay the cell with them. */
  private stdinAnswers: string[] = [];
  private readonly log: (s: string) => void;

  /** `server` is already bound and answering kernel_info (kernel/main.ts); `log` writes to the real stderr. */
  constructor(server: KernelServer, cwd: string, log: (s: string) => void) {
    this.log = log;
    this.server = server;
    this.session = new Session(cwd);
    this.pacer = new OutputPacer(
      {
        stream: (name, text) => this.server.publish("stream", { name, text }, this.outputParent),
        display: (content, update) => this.server.publish(update ? "update_display_data" : "display_data", content, this.outputParent),
      },
      50,
      iopubPaceFromEnv(),
      outputMemoryLimitFromEnv(),
    );
    this.launchHost = new KernelLaunchHost({
      session: this.session,
      guard: this.guard,
      runningCell: () => ({ executionCount: this.executionCount, code: this.currentCode }),
      output: () => this.cellOutput(),
      setActive: (launch, running) => void (running ? this.activeLaunches.add(launch) : this.activeLaunches.delete(launch)),
    });
    // notebookLauncher()/debugLauncher() called in a cell launch through the same host.
    setLaunchHost(this.launchHost);
  }

  /** Takes over the server's requests (those that came while the kernel loaded are passed on by main.ts). */
  start(): void {
    this.captureProcessOutput();
    this.installNotebookGlobals();
    this.server.setHandlers(
      (msg) => this.receive(msg, "shell"),
      (msg) => this.receive(msg, "control"),
    );
    this.launchHost.refillWarmPool(); // only when TSLAUNCH_WARM_POOL_START asks for warm workers at start
  }

  /** A request from the server. Shell requests run one after another, as in ipykernel. */
  receive(msg: JupyterMessage, channel: "shell" | "control"): Promise<void> {
    if (channel === "control") return this.handle(msg as Request, "control", 0);
    const seq = msg.header.msg_type === "execute_request" ? ++this.received : 0;
    if (seq) this.executesWaiting++;
    this.queuedShell++;
    const run = this.shellChain.then(() => this.handle(msg as Request, "shell", seq));
    this.shellChain = run.catch(() => {});
    return Promise.resolve();
  }

  /** Execute requests received and not yet started (aborted ones included until their turn). */
  private executesWaiting = 0;
  /** An interrupt came before the cell waiting first could start: it ends with KeyboardInterrupt, unrun. */
  private interruptBeforeStart = false;

  /** See Session.warmUp. */
  warmUp(code: string): void {
    this.session.warmUp(code);
  }

  /** Jupyter's interrupt: stop a running launch and the cell tslab is running. */
  interrupt(): void {
    // A cell the frontend shows as running may still be waiting to start (behind `busy`, or queued
    // while the kernel loaded): it ends with KeyboardInterrupt instead of starting.
    if (!this.runningRequest && this.executesWaiting > 0) this.interruptBeforeStart = true;
    for (const launch of this.activeLaunches) launch.interrupt();
    this.session.interrupt();
    this.server.stdin.cancelAll(new Error("the input was interrupted"));
  }

  /** display(), prompt() and input() for cells (declared in launcher/contract/notebook-globals.ts). */
  private installNotebookGlobals(): void {
    const globals = globalThis as Record<string, unknown>;
    globals.display = createDisplayFunction((output) => this.cellOutput().display(output, false));
    globals.prompt = (message?: unknown, defaultValue?: unknown): string | null => {
      const request = this.stdinRequest("prompt");
      this.cellOutput().flush();
      const answer = this.server.stdin.askBlocking(request, message === undefined ? "" : String(message), false);
      // As in browsers and Deno: an empty answer takes the default.
      const value = answer === "" && defaultValue !== undefined ? String(defaultValue) : answer;
      this.stdinAnswers.push(value);
      return value;
    };
    globals.input = async (message?: unknown, options?: { password?: boolean }): Promise<string> => {
      const request = this.stdinRequest("input");
      this.cellOutput().flush();
      const answers = this.stdinAnswers;
      const value = await this.server.stdin.ask(request, message === undefined ? "" : String(message), Boolean(options?.password));
      answers.push(value);
      return value;
    };
  }

  /** The request prompt()/input() ask for, or a clear error why they cannot ask. */
  private stdinRequest(fn: "prompt" | "input"): Request<"execute_request"> {
    const request = this.runningRequest;
    if (!request) throw new StdinNotAllowedError(fn, "no-cell");
    if (!request.content.allow_stdin) throw new StdinNotAllowedError(fn, "not-allowed");
    return request;
  }

  private cellOutput(): CellOutput {
    return {
      stream: (name, text) => this.pacer.write(name, text),
      display: (content, update = false) => this.pacer.display(content, update),
      flush: () => this.pacer.flush(),
    };
  }

  /** Everything user code writes to stdout/stderr in the kernel becomes a stream output. */
  private captureProcessOutput(): void {
    for (const name of ["stdout", "stderr"] as const) {
      // One decoder per stream: a character split across two byte writes stays one character.
      const decoder = new StringDecoder("utf8");
      (process[name] as unknown as { write: unknown }).write = (chunk: string | Uint8Array, encoding?: unknown, cb?: unknown) => {
        const text = typeof chunk === "string" ? decoder.end() + chunk : decoder.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        if (text) this.pacer.write(name, text);
        const callback = typeof encoding === "function" ? encoding : cb;
        if (typeof callback === "function") process.nextTick(callback as () => void);
        return true;
      };
    }
    // tslab.display() in a cell writes through this hook.
    (tslabJupyter as { lastWriteDisplayData: unknown }).lastWriteDisplayData = (content: DisplayContent, update: boolean) =>
      this.cellOutput().display(content, update);
  }

  private async handle(msg: Request, channel: "shell" | "control", seq: number): Promise<void> {
    traceMark(`kernel: ${msg.header.msg_type}`);
    this.idleCollector.busy();
    this.server.publish("status", { execution_state: "busy" }, msg);
    try {
      await this.dispatch(msg, channel, seq);
    } catch (err) {
      this.log(`request ${msg.header.msg_type} failed: ${(err as Error)?.stack ?? err}`);
    } finally {
      this.server.publish("status", { execution_state: "idle" }, msg);
      traceMark("kernel: idle");
      // Warm workers start when no cell is running or waiting, so they never slow one down.
      if (channel === "shell" && --this.queuedShell === 0) {
        this.launchHost.refillWarmPool();
        this.idleCollector.idle();
      }
    }
  }

  private async dispatch(msg: Request, channel: "shell" | "control", seq: number): Promise<void> {
    switch (msg.header.msg_type) {
      case "kernel_info_request":
        return this.server.reply(channel, msg, "kernel_info_reply", kernelInfo());
      case "execute_request":
        return this.execute(msg as Request<"execute_request">, seq);
      case "complete_request": {
        const { code, cursor_pos } = (msg as Request<"complete_request">).content;
        const reply = this.complete(code, codePointsToUtf16(code, cursor_pos ?? [...code].length));
        return this.server.reply(channel, msg, "complete_reply", {
          ...reply, cursor_start: utf16ToCodePoints(code, reply.cursor_start), cursor_end: utf16ToCodePoints(code, reply.cursor_end),
        });
      }
      case "inspect_request": {
        const { code, cursor_pos } = (msg as Request<"inspect_request">).content;
        return this.server.reply(channel, msg, "inspect_reply", this.inspect(code, codePointsToUtf16(code, cursor_pos ?? [...code].length)));
      }
      case "is_complete_request":
        return this.server.reply(channel, msg, "is_complete_reply", isComplete((msg as Request<"is_complete_request">).content.code));
      case "comm_info_request":
        return this.server.reply(channel, msg, "comm_info_reply", NO_COMMS);
      case "history_request":
        return this.server.reply(channel, msg, "history_reply", NO_HISTORY);
      case "interrupt_request":
        this.interrupt();
        return this.server.reply(channel, msg, "interrupt_reply", { status: "ok" });
      case "shutdown_request":
        return this.shutdown(msg, channel, Boolean((msg as Request<"shutdown_request">).content.restart));
      case "comm_open": {
        // No comm target is registered here: the spec says to close the comm at once, on iopub.
        const content = msg.content as { comm_id?: unknown };
        if (typeof content?.comm_id === "string") this.server.publish("comm_close", { comm_id: content.comm_id, data: {} }, msg);
        return;
      }
      default:
        // comm_msg / comm_close and unknown requests: no comms here, and the spec says a kernel
        // ignores what it does not know.
        return;
    }
  }

  /** execute_request around the cell (as ipykernel's execute_request around do_execute). */
  private async execute(msg: Request<"execute_request">, seq: number): Promise<void> {
    const { code, silent = false, store_history = true, stop_on_error = true } = msg.content;
    if (seq <= this.abortBefore) {
      this.executesWaiting--;
      return this.server.reply("shell", msg, "execute_reply", { status: "aborted", execution_count: this.executionCount });
    }
    // Late output of the previous cell belongs to the previous cell.
    await this.pacer.drained();
    this.outputParent = msg;
    if (!silent && store_history) this.executionCount++;
    const count = this.executionCount;
    this.currentCode = code;
    if (!silent) this.server.publish("execute_input", { code, execution_count: count }, msg);
    // A cell that blocks the event loop would hold `busy` and `execute_input` back until it ends.
    await this.server.iopubFlushed();

    let outcome: CellOutcome;
    this.executesWaiting--;
    this.runningRequest = msg;
    this.stdinAnswers = [];
    try {
      if (this.interruptBeforeStart) {
        this.interruptBeforeStart = false;
        throw KEYBOARD_INTERRUPT_ERROR;
      }
      outcome = await runCell(code, count, {
        session: this.session, guard: this.guard, launchHost: this.launchHost, output: this.cellOutput(), stdinAnswers: this.stdinAnswers,
      });
    } catch (err) {
      // Whatever failed, the cell ends with an error and a reply: a frontend never waits forever.
      outcome = { error: unexpectedCellError(err) };
    } finally {
      this.runningRequest = null;
    }
    traceMark("kernel: cell ran");
    // Every line reaches the frontend before the result, the reply and `idle` (paced under a Jupyter server).
    await this.pacer.drained();
    traceMark("kernel: output drained");
    if (outcome.result && !silent) this.server.publish("execute_result", { execution_count: count, data: outcome.result, metadata: {} }, msg);
    const error = outcome.error;
    if (error) {
      if (!silent) this.server.publish("error", error, msg);
      if (stop_on_error) this.abortBefore = this.received;
      return this.server.reply("shell", msg, "execute_reply", { status: "error", execution_count: count, ...error });
    }
    return this.server.reply("shell", msg, "execute_reply", { status: "ok", execution_count: count, user_expressions: {}, payload: [] });
  }

  private complete(code: string, cursor: number): CompleteReply {
    const magic = completeMagic(code, cursor);
    if (magic) return { status: "ok", metadata: {}, ...magic };
    const { code: body, offset } = splitMagicBody(code);
    if (cursor < offset) return { status: "ok", matches: [], cursor_start: cursor, cursor_end: cursor, metadata: {} };
    const info = this.session.complete(body, cursor - offset);
    return { status: "ok", matches: info.candidates, cursor_start: info.start + offset, cursor_end: info.end + offset, metadata: {} };
  }

  private inspect(code: string, cursor: number): InspectReply {
    const magic = inspectMagic(code, cursor);
    if (magic) return { status: "ok", found: true, data: { "text/plain": magic }, metadata: {} };
    const { code: body, offset } = splitMagicBody(code);
    const info = cursor >= offset ? this.session.inspect(body, cursor - offset) : undefined;
    if (!info) return { status: "ok", found: false, data: {}, metadata: {} };
    return { status: "ok", found: true, data: { "text/plain": printQuickInfo(info) }, metadata: {} };
  }

  private async shutdown(msg: JupyterMessage<unknown>, channel: "shell" | "control", restart: boolean): Promise<void> {
    await Promise.all([...this.activeLaunches].map((launch) => launch.stop()));
    this.launchHost.disposeWarmPool();
    this.server.reply(channel, msg, "shutdown_reply", { status: "ok", restart });
    this.server.publish("status", { execution_state: "idle" }, msg);
    await this.server.flushed();
    this.session.close();
    this.server.close();
    process.exit(0);
  }

  /** Synchronous last resort (process exit, SIGTERM): no worker or launch folder may outlive us. */
  abortLaunches(): void {
    for (const launch of this.activeLaunches) launch.abortSync();
    this.launchHost.disposeWarmPool();
  }
}

/** Thrown in place of running a cell that was interrupted before it started. */
const KEYBOARD_INTERRUPT_ERROR = Symbol("interrupted before it started");

/** An error no part of the cell reported itself: shown plainly, and the kernel lives on. */
function unexpectedCellError(err: unknown): CellError {
  if (err === KEYBOARD_INTERRUPT_ERROR) return KEYBOARD_INTERRUPT;
  const reported = ReportedError.toCellError(err);
  if (reported) return reported;
  const e = err instanceof Error ? err : new Error(String(err));
  const code = (e as NodeJS.ErrnoException).code;
  return {
    ename: e.name || "Error",
    evalue: e.message,
    traceback: [`${e.name || "Error"}: ${e.message}${code ? ` (${code})` : ""}`, "The cell failed inside tslaunch, not in your code; the kernel is still running. If it happens again, please report it with the cell."],
  };
}

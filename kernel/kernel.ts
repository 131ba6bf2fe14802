// The kernel: answers each Jupyter request. Ordinary cells go to tslab's executor (kernel/session),
// `%%launch` cells to kernel/launch-cell. Output of any cell reaches iopub through a StreamBatcher.
import { inspect } from "util";
import { isCompleteCode } from "tslab/dist/converter";
import { printQuickInfo } from "tslab/dist/inspect";
import * as tslabJupyter from "tslab/dist/jupyter";
import { KernelServer } from "./server";
import { Session, type CellError } from "./session";
import { iopubRateFromEnv, StreamBatcher, type StreamName } from "./stream-batcher";
import { parseMagic } from "./magics";
import { probePassedNotice, runLaunchCell, showLaunchEvent, type ActiveLaunch } from "./launch-cell";
import { DeviceGuard } from "./device-guard";
import { LaunchView } from "./launch-view";
import { setLaunchHost } from "../launcher/launch-host";
import { completeMagic, inspectMagic } from "./magic-help";
import { PROTOCOL_VERSION, type ConnectionInfo, type JupyterMessage } from "./wire";
import { versions as tslabVersions } from "tslab";

const KERNEL_VERSION: string = require("../../package.json").version;

export interface DisplayContent {
  data: Record<string, unknown>;
  metadata: Record<string, unknown>;
  transient?: Record<string, unknown>;
}

/** What a cell's handler may do with the cell's outputs. */
export interface CellOutput {
  stream(name: StreamName, text: string): void;
  display(content: DisplayContent, update?: boolean): void;
  flush(): void;
}

export class Kernel {
  private readonly server: KernelServer;
  private readonly session: Session;
  private executionCount = 0;
  /** The request whose cell owns output right now (tslab and ipykernel route late output there too). */
  private outputParent: JupyterMessage | null = null;
  private readonly batcher: StreamBatcher;
  private shellChain: Promise<void> = Promise.resolve();
  /** Execute requests received so far; after an error, ones received before it are aborted. */
  private received = 0;
  private abortBefore = 0;
  private activeLaunch: ActiveLaunch | null = null;
  private readonly guard = new DeviceGuard();
  /** The live view of the launch a notebookLauncher()/debugLauncher() call started. */
  private functionLaunchView: LaunchView | null = null;
  private currentCode = "";
  private readonly log: (s: string) => void;

  constructor(conn: ConnectionInfo, cwd: string) {
    const stderrWrite = process.stderr.write.bind(process.stderr);
    this.log = (s) => void stderrWrite(`[tslaunch kernel] ${s}\n`);
    this.server = new KernelServer(conn, this.log);
    this.session = new Session(cwd);
    this.batcher = new StreamBatcher((name, text) => this.server.publish("stream", { name, text }, this.outputParent), 50, iopubRateFromEnv());
    // notebookLauncher()/debugLauncher() called in a cell launch through this session and cell.
    setLaunchHost({
      cwd,
      replay: () => this.session.recorded,
      sideOutputs: () => [...this.session.sideOutputs].map(([p, data]) => ({ path: p, data })),
      executionCount: () => this.executionCount,
      cellLinesOf: (source) => this.session.cellLinesOf(source),
      onEvent: (event) => {
        showLaunchEvent(event, this.cellOutput());
        this.functionLaunchView?.onEvent(event);
      },
      launchStarted: (options, numProcesses) => {
        this.functionLaunchView = new LaunchView(options, numProcesses, (content, update) => this.cellOutput().display(content, update));
        this.functionLaunchView.open();
      },
      setActive: (launch) => (this.activeLaunch = launch),
      checkBeforeLaunch: () => this.guard.checkBeforeLaunch(this.executionCount, this.currentCode),
      probePassed: (ms, worldSize) => this.cellOutput().stream("stderr", probePassedNotice(ms, worldSize)),
    });
  }

  async start(): Promise<void> {
    this.captureProcessOutput();
    await this.server.start(
      // Shell requests run one after another, as in ipykernel.
      (msg) => {
        const seq = msg.header.msg_type === "execute_request" ? ++this.received : 0;
        const run = this.shellChain.then(() => this.handle(msg, "shell", seq));
        this.shellChain = run.catch(() => {});
        return Promise.resolve();
      },
      (msg) => this.handle(msg, "control", 0),
    );
    process.on("SIGINT", () => this.interrupt());
  }

  /** Jupyter's interrupt: stop a running launch and the cell tslab is running. */
  interrupt(): void {
    this.activeLaunch?.interrupt();
    this.session.interrupt();
  }

  private cellOutput(): CellOutput {
    return {
      stream: (name, text) => this.batcher.write(name, text),
      display: (content, update = false) => {
        this.batcher.flush();
        this.server.publish(update ? "update_display_data" : "display_data", content, this.outputParent);
      },
      flush: () => this.batcher.flush(),
    };
  }

  /** Everything user code writes to stdout/stderr in the kernel becomes a stream output. */
  private captureProcessOutput(): void {
    for (const name of ["stdout", "stderr"] as const) {
      (process[name] as unknown as { write: unknown }).write = (chunk: string | Uint8Array, encoding?: unknown, cb?: unknown) => {
        this.batcher.write(name, typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8"));
        const callback = typeof encoding === "function" ? encoding : cb;
        if (typeof callback === "function") process.nextTick(callback as () => void);
        return true;
      };
    }
    // tslab.display() in a cell writes through this hook.
    (tslabJupyter as { lastWriteDisplayData: unknown }).lastWriteDisplayData = (content: DisplayContent, update: boolean) =>
      this.cellOutput().display(content, update);
  }

  private async handle(msg: JupyterMessage, channel: "shell" | "control", seq: number): Promise<void> {
    this.server.publish("status", { execution_state: "busy" }, msg);
    try {
      await this.dispatch(msg, channel, seq);
    } catch (err) {
      this.log(`request ${msg.header.msg_type} failed: ${(err as Error)?.stack ?? err}`);
    } finally {
      this.server.publish("status", { execution_state: "idle" }, msg);
    }
  }

  private async dispatch(msg: JupyterMessage, channel: "shell" | "control", seq: number): Promise<void> {
    const c = msg.content;
    switch (msg.header.msg_type) {
      case "kernel_info_request":
        return this.server.reply(channel, msg, "kernel_info_reply", this.kernelInfo());
      case "execute_request":
        return this.execute(msg, seq);
      // Protocol 5.3 counts cursor positions in Unicode code points; JavaScript strings in UTF-16 units.
      case "complete_request": {
        const reply = this.complete(c.code, codePointsToUtf16(c.code, c.cursor_pos ?? [...c.code].length)) as { cursor_start: number; cursor_end: number };
        return this.server.reply(channel, msg, "complete_reply", {
          ...reply, cursor_start: utf16ToCodePoints(c.code, reply.cursor_start), cursor_end: utf16ToCodePoints(c.code, reply.cursor_end),
        });
      }
      case "inspect_request":
        return this.server.reply(channel, msg, "inspect_reply", this.inspect(c.code, codePointsToUtf16(c.code, c.cursor_pos ?? [...c.code].length)));
      case "is_complete_request":
        return this.server.reply(channel, msg, "is_complete_reply", this.isComplete(c.code));
      case "comm_info_request":
        return this.server.reply(channel, msg, "comm_info_reply", { status: "ok", comms: {} });
      case "history_request":
        return this.server.reply(channel, msg, "history_reply", { status: "ok", history: [] });
      case "interrupt_request":
        this.interrupt();
        return this.server.reply(channel, msg, "interrupt_reply", { status: "ok" });
      case "shutdown_request":
        return this.shutdown(msg, channel, Boolean(c.restart));
      default:
        // comm_open / comm_msg / comm_close and unknown requests: no comms here, and the spec says
        // a kernel ignores what it does not know.
        return;
    }
  }

  private kernelInfo(): object {
    return {
      status: "ok",
      protocol_version: PROTOCOL_VERSION,
      implementation: "tslaunch",
      implementation_version: KERNEL_VERSION,
      language_info: {
        name: "typescript",
        version: tslabVersions.typescript,
        mimetype: "text/typescript",
        file_extension: ".ts",
        // JupyterLab reads `mode`; the classic Notebook needs name + typescript (as tslab does).
        codemirror_mode: { mode: "typescript", name: "javascript", typescript: true },
      },
      banner: `tslaunch ${KERNEL_VERSION}: TypeScript (tslab ${tslabVersions.tslab}) with %%launch`,
      help_links: [{ text: "tslaunch", url: "https://www.npmjs.com/package/tslaunch" }],
      debugger: false,
    };
  }

  private async execute(msg: JupyterMessage, seq: number): Promise<void> {
    const { code, silent = false, store_history = true, stop_on_error = true } = msg.content as {
      code: string; silent?: boolean; store_history?: boolean; stop_on_error?: boolean;
    };
    if (seq <= this.abortBefore) {
      return this.server.reply("shell", msg, "execute_reply", { status: "aborted", execution_count: this.executionCount });
    }
    // Late output of the previous cell belongs to the previous cell.
    await this.batcher.drained();
    this.outputParent = msg;
    if (!silent && store_history) this.executionCount++;
    const count = this.executionCount;
    this.currentCode = code;
    if (!silent) this.server.publish("execute_input", { code, execution_count: count }, msg);
    // A cell that blocks the event loop would hold `busy` and `execute_input` back until it ends.
    await this.server.iopubFlushed();

    const output = this.cellOutput();
    let error: CellError | null = null;
    const magic = parseMagic(code);
    if (magic?.name === "launch") {
      const launched = await runLaunchCell(magic, {
        session: this.session,
        executionCount: count,
        output,
        setActive: (a) => (this.activeLaunch = a),
        checkBeforeLaunch: () => this.guard.checkBeforeLaunch(count, code),
      });
      if (!launched.ok) error = launched.error;
    } else if (magic) {
      error = {
        ename: "UsageError",
        evalue: `unknown cell magic %%${magic.name}`,
        traceback: [`UsageError: unknown cell magic %%${magic.name}. Available: %%launch (see %%launch --help).`],
      };
    } else {
      const outcome = await this.session.execute(code, count);
      this.batcher.flush();
      if (!outcome.ok) error = outcome.error;
      else if (outcome.hasResult && !silent) {
        this.server.publish("execute_result", {
          execution_count: count,
          data: { "text/plain": typeof outcome.result === "string" ? outcome.result : inspect(outcome.result, { colors: false }) },
          metadata: {},
        }, msg);
      }
    }
    // The device guard looks at the kernel process after every cell, to name the cell that first
    // touched an accelerator.
    const warning = this.guard.afterCell(count, code);
    if (warning) output.stream("stderr", warning + "\n");
    // Every line reaches the frontend before the reply and `idle` (paced under a Jupyter server).
    await this.batcher.drained();
    if (error) {
      if (!silent) this.server.publish("error", error, msg);
      if (stop_on_error) this.abortBefore = this.received;
      return this.server.reply("shell", msg, "execute_reply", { status: "error", execution_count: count, ...error });
    }
    return this.server.reply("shell", msg, "execute_reply", { status: "ok", execution_count: count, user_expressions: {}, payload: [] });
  }

  private complete(code: string, cursor: number): object {
    const magic = completeMagic(code, cursor);
    if (magic) return { status: "ok", metadata: {}, ...magic };
    const { code: body, offset } = splitMagicBody(code);
    if (cursor < offset) return { status: "ok", matches: [], cursor_start: cursor, cursor_end: cursor, metadata: {} };
    const info = this.session.complete(body, cursor - offset);
    return { status: "ok", matches: info.candidates, cursor_start: info.start + offset, cursor_end: info.end + offset, metadata: {} };
  }

  private inspect(code: string, cursor: number): object {
    const magic = inspectMagic(code, cursor);
    if (magic) return { status: "ok", found: true, data: { "text/plain": magic }, metadata: {} };
    const { code: body, offset } = splitMagicBody(code);
    const info = cursor >= offset ? this.session.inspect(body, cursor - offset) : undefined;
    if (!info) return { status: "ok", found: false, data: {}, metadata: {} };
    return { status: "ok", found: true, data: { "text/plain": printQuickInfo(info) }, metadata: {} };
  }

  private isComplete(code: string): object {
    const { code: body } = splitMagicBody(code);
    const res = isCompleteCode(body);
    return res.completed ? { status: "complete" } : { status: "incomplete", indent: res.indent ?? "" };
  }

  private async shutdown(msg: JupyterMessage, channel: "shell" | "control", restart: boolean): Promise<void> {
    await this.activeLaunch?.stop();
    this.server.reply(channel, msg, "shutdown_reply", { status: "ok", restart });
    this.server.publish("status", { execution_state: "idle" }, msg);
    await this.server.flushed();
    this.session.close();
    this.server.close();
    process.exit(0);
  }

  /** Synchronous last resort (process exit, SIGTERM): no worker or launch folder may outlive us. */
  abortLaunches(): void {
    this.activeLaunch?.abortSync();
  }
}

function codePointsToUtf16(text: string, codePoints: number): number {
  let units = 0;
  let seen = 0;
  for (const ch of text) {
    if (seen >= codePoints) break;
    units += ch.length;
    seen++;
  }
  return units;
}

function utf16ToCodePoints(text: string, units: number): number {
  return [...text.slice(0, units)].length;
}

/** A `%%launch` cell's body, and where it starts in the cell (for completion and inspection). */
function splitMagicBody(code: string): { code: string; offset: number } {
  if (!code.startsWith("%%")) return { code, offset: 0 };
  const nl = code.indexOf("\n");
  return nl < 0 ? { code: "", offset: code.length } : { code: code.slice(nl + 1), offset: nl + 1 };
}

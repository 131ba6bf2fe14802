// Starts the kernel for a Jupyter connection file (what kernel.json's argv runs).
//
// Fast start: the sockets are bound and kernel_info and is_complete (cells/cell-text.ts) are answered
// with only ZeroMQ loaded; the kernel proper (TypeScript's language service, tslab, the
// launcher: ~1.7 s on 2 cores) loads, in steps, when the first request that needs it arrives; it and
// any that come meanwhile are then handled in order. A client quiet for a second after start gets it
// loaded in the background, before its first cell.
import "./cells/typescript-choice"; // first: which TypeScript `@tslab/typescript-for-tslab` means
import v8 from "v8";
import { readFileSync } from "fs";
import type { Kernel } from "./kernel";
import { KernelServer } from "./jupyter/server";
import type { ConnectionInfo, JupyterMessage } from "./jupyter/wire";
import { isCompleteWithoutParser } from "./cells/cell-text";
import { kernelInfo, NO_COMMS, NO_HISTORY } from "./kernel-info";
import { STARTED_BY } from "./started-by";
import { listenForInterrupts } from "./interrupt-signal";

/**
 * A kernel whose Jupyter client died (killed without a shutdown_request) would live on, and keep
 * its launch's workers alive. Like ipykernel's parent poller, but whoever started us: the process
 * named by JPY_PARENT_PID (Jupyter clients set it) or else our parent at start (VS Code and other
 * clients start kernels raw). When it is no longer our parent, stop everything and exit. A kernel
 * started by init (parent pid 1, e.g. a service) has no parent to outlive.
 */
function watchParent(kernel: () => Kernel | null): void {
  const named = Number(process.env.JPY_PARENT_PID);
  const parent = Number.isInteger(named) && named > 1 && STARTED_BY === named ? named : STARTED_BY;
  if (parent <= 1) return;
  setInterval(() => {
    if (process.ppid === parent) return;
    kernel()?.abortLaunches();
    process.exit(0);
  }, 1000).unref();
}

export async function startKernel(connectionFile: string): Promise<void> {
  // Most JavaScript this process runs is TypeScript's compiler, a few times per cell. V8's baseline
  // compiler (Sparkplug) made code for thousands of its warm functions, ~1 MiB per new kind of cell,
  // for no speed we could measure (docs/decisions.md 64). Cells' hot code is still optimized.
  v8.setFlagsFromString("--no-sparkplug");
  const conn = JSON.parse(readFileSync(connectionFile, "utf8")) as ConnectionInfo;
  if (conn.signature_scheme && conn.signature_scheme !== "hmac-sha256") {
    throw new Error(`unsupported signature_scheme ${conn.signature_scheme}; tslaunch signs with hmac-sha256`);
  }
  const stderrWrite = process.stderr.write.bind(process.stderr);
  const log = (s: string) => void stderrWrite(`[tslaunch kernel] ${s}\n`);
  let kernel: Kernel | null = null;
  /** Requests that came while the kernel loaded (kernel_info excepted: it is answered at once). */
  const waiting: { msg: JupyterMessage; channel: "shell" | "control" }[] = [];
  // No worker may outlive the kernel: on any exit path, kill the running launch's workers. (A
  // SIGKILL of the kernel skips this; the workers' lifeline pipe covers that case.)
  process.on("exit", () => kernel?.abortLaunches());
  for (const sig of ["SIGTERM", "SIGHUP"] as const) {
    process.on(sig, () => {
      kernel?.abortLaunches();
      process.exit(128 + (sig === "SIGTERM" ? 15 : 1));
    });
  }
  // Jupyter's interrupt. One that comes while the kernel loads stops the cell waiting for it.
  let interruptedWhileLoading = false;
  listenForInterrupts(() => {
    if (kernel) kernel.interrupt();
    else interruptedWhileLoading = true;
  });
  process.on("uncaughtException", (err) => process.stderr.write(`Uncaught exception: ${err?.stack ?? err}\n`));
  process.on("unhandledRejection", (err) => process.stderr.write(`Unhandled promise rejection: ${(err as Error)?.stack ?? err}\n`));
  watchParent(() => kernel); // from the start: a client may die before the kernel is up

  const server = new KernelServer(conn, log);
  let loading: Promise<void> | null = null;
  // A request waiting for the kernel cuts the declarations' parse short: the service parses the rest.
  const load = () => (loading ??= loadKernel(server, log, () => waiting.length > 0).then((k) => {
    kernel = k;
    k.start();
    // Requests that came while it loaded, in their order, through the kernel's own handlers; then
    // an interrupt that came meanwhile (perhaps read before the cell's request) stops the waiting cell.
    const handedOver = waiting.splice(0);
    for (const { msg, channel } of handedOver) void k.receive(msg, channel);
    // A background load may have had no cell waiting at all: then the interrupt had nothing to stop.
    if (interruptedWhileLoading && handedOver.some(({ msg }) => msg.header.msg_type === "execute_request")) k.interrupt();
    interruptedWhileLoading = false;
  }, (err) => {
    // Without the kernel proper no request can be answered: die visibly rather than leave cells waiting.
    log(`the kernel could not load: ${(err as Error)?.stack ?? err}`);
    process.exit(1);
  }));
  // What clients ask at start (jupyter console: kernel_info, then history, then is_complete as the
  // user types) is answered without the kernel proper. It loads when a request needs it, or in the
  // background once the client has been quiet a moment, so that a notebook's first cell waits for
  // none of it. jupyter console gives up on the kernel's is_complete for good after one unanswered
  // second: no step of the load blocks more than ~0.5 s (TypeScript's own module; the language
  // service, its declaration files parsed one per step beforehand) (docs/decisions.md 50, 62).
  let quietTimer: NodeJS.Timeout | null = null;
  const loadWhenQuiet = () => {
    if (quietTimer) clearTimeout(quietTimer);
    quietTimer = setTimeout(() => void load(), LOAD_AFTER_QUIET_MS);
    quietTimer.unref();
  };
  const whileLoading = async (msg: JupyterMessage, channel: "shell" | "control") => {
    const type = msg.header.msg_type;
    if (!loading) loadWhenQuiet();
    if (!ANSWERED_WHILE_LOADING.has(type)) {
      waiting.push({ msg, channel });
      void load();
      return;
    }
    server.publish("status", { execution_state: "busy" }, msg);
    if (type === "kernel_info_request") server.reply(channel, msg, "kernel_info_reply", kernelInfo());
    else if (type === "history_request") server.reply(channel, msg, "history_reply", NO_HISTORY);
    else if (type === "comm_info_request") server.reply(channel, msg, "comm_info_reply", NO_COMMS);
    else server.reply(channel, msg, "is_complete_reply", isCompleteWithoutParser((msg as JupyterMessage<{ code: string }>).content.code));
    server.publish("status", { execution_state: "idle" }, msg);
  };
  await server.start(whileLoading, whileLoading);
  // Warm workers asked for at start (kernel/launch/kernel-launch-host.ts) need the kernel proper now.
  if (Number(process.env.TSLAUNCH_WARM_POOL_START ?? 0) > 0) setTimeout(() => void load(), 200);
}

const ANSWERED_WHILE_LOADING = new Set(["kernel_info_request", "is_complete_request", "history_request", "comm_info_request"]);

/** How long the client must have been quiet before the kernel loads in the background. */
const LOAD_AFTER_QUIET_MS = 1000;

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Cells of the shapes most notebooks start with: an expression, declarations, a class, an await. */
const WARM_UP_CELLS = [
  "1 + 1",
  "interface WarmUpRow { id: number; name: string }\nconst warmUpRows: WarmUpRow[] = [1, 2].map((id) => ({ id, name: `row${id}` }));\nfunction warmUpFirst(rows: WarmUpRow[]): WarmUpRow | undefined { return rows.find((r) => r.id > 0); }\nwarmUpFirst(warmUpRows)?.name",
  "class WarmUpCounter { private n = 0; next(): number { return ++this.n; } }\nconst warmUpValue = await Promise.resolve(new WarmUpCounter().next());\nconsole.log(warmUpValue);",
];

/**
 * Loads the kernel proper in steps, so that a request arriving in between is read between steps.
 * `requestWaiting`: a request needs the kernel now (the declarations' parse then stops early).
 */
async function loadKernel(server: KernelServer, log: (s: string) => void, requestWaiting: () => boolean): Promise<Kernel> {
  const selfImport = await import("./self-import");
  selfImport.resolveOwnPackage();
  selfImport.forwardOwnTypes(process.cwd());
  // Before anything loads tslab's converter: the notebook's tsconfig.json options reach it this way.
  const cellOptions = await import("./cells/cell-compiler-options");
  cellOptions.installCellCompilerOptionsHook();
  await nextTurn();
  const { Kernel } = await import("./kernel");
  await nextTurn();
  const { readNotebookTsconfig } = await import("./cells/notebook-tsconfig");
  try {
    await cellOptions.preparseCellDeclarations(process.cwd(), readNotebookTsconfig(process.cwd()).options, nextTurn, requestWaiting);
  } catch (err) {
    // Only a head start: the language service reads whatever this did not.
    log(`parsing the declaration files ahead failed (the language service will): ${(err as Error)?.message ?? err}`);
  }
  const kernel = new Kernel(server, process.cwd(), log);
  // A background load (no request waiting) also compiles a few typical cells, one per turn, and
  // throws them away: the first real cells then find TypeScript's code paths compiled by V8.
  for (const cell of WARM_UP_CELLS) {
    await nextTurn();
    if (requestWaiting()) break;
    try {
      kernel.warmUp(cell);
    } catch (err) {
      log(`warming up the compiler failed (cells will compile anyway): ${(err as Error)?.message ?? err}`);
      break;
    }
  }
  // One more turn of the event loop: a SIGINT that came during the long step above reaches the
  // handler now (interrupt-signal.ts), before the first cell is handed over.
  await nextTurn();
  return kernel;
}

// How the kernel hears Jupyter's interrupt: a SIGINT to its process group (interrupt_mode "signal").
//
// Cells run with vm's breakOnSigint, so that a busy loop can be stopped. Node does that with a
// helper thread that owns SIGINT while a run lasts. For every run it starts and joins that thread,
// and where the process has SIGINT listeners it takes them all off and puts them back (libuv lets
// go of the signal, the helper takes it). On this kind of VM that is ~0.3 ms of each cell, a sixth
// of a `1+1` round trip.
//
// So, where Node has them, the kernel starts the helper once for its whole life, through the
// functions Node's own REPL uses (startSigintWatchdog), and keeps no SIGINT listener of its own
// ("watchdog" mode). A run then only registers with the helper. A SIGINT that comes outside a run
// leaves a pending flag, read by a timer every POLL_MS and before each cell runs.
//
// A SIGINT listener that a cell or a library adds takes the signal back through libuv, and Node's
// way of running with breakOnSigint assumes that no helper thread is left running outside runs.
// The kernel then switches to "listener" mode, Node's plain way: the helper stopped, a kernel
// listener beside theirs. It switches back once theirs are gone. Switching happens between runs
// only, never inside one (Node aborts if the helper is stopped under a run). A listener added and
// removed inside one run leaves the signal to Node's default action (exit) until the run ends:
// the kernel puts a listener of its own in at once to keep the signal. Listeners of cells are
// never called on an interrupt in watchdog mode: Jupyter's interrupt stops the cell, it is not a
// terminal's Ctrl-C.
//
// Where Node lacks the helper's functions (or TSLAUNCH_INTERRUPT_WATCHDOG=0), listener mode is all there is.

/** Node's SIGINT helper, as process.binding("contextify") offers it to the REPL. */
interface SigintWatchdog {
  startSigintWatchdog(): void;
  /** True when a SIGINT came while no run was registered (the flag is cleared). */
  stopSigintWatchdog(): boolean;
  watchdogHasPendingSigint(): boolean;
}

const POLL_MS = 50;

let onInterrupt: () => void = () => {};
let watchdog: SigintWatchdog | null = null;
let mode: "watchdog" | "listener" = "listener";
/** Runs of runBreakable() on the stack. */
let depth = 0;
/** SIGINT listeners changed since the helper's handler last owned the signal. */
let listenersTouched = false;
/** Our own listener changes, which the hooks ignore. */
let switching = false;

const kernelListener = () => onInterrupt();

/** Calls `handler` (asynchronously) on every SIGINT from now on; the process never dies of one. */
export function listenForInterrupts(handler: () => void, env: NodeJS.ProcessEnv = process.env): void {
  onInterrupt = handler;
  watchdog = env.TSLAUNCH_INTERRUPT_WATCHDOG === "0" ? null : nodeSigintWatchdog();
  if (!watchdog) {
    process.on("SIGINT", kernelListener);
    return;
  }
  watchdog.startSigintWatchdog();
  mode = "watchdog";
  process.on("newListener", (event) => {
    if (event === "SIGINT" && !switching) listenersChanged();
  });
  process.on("removeListener", (event) => {
    if (event !== "SIGINT" || switching) return;
    // libuv just let go of the signal (SIG_DFL) if that was the last listener: inside a run the
    // helper cannot take it back, so a listener of ours holds it until the run ends.
    if (mode === "watchdog" && process.listenerCount("SIGINT") === 0) withoutHooks(() => process.on("SIGINT", kernelListener));
    listenersChanged();
  });
  setInterval(() => void deliverPending(), POLL_MS).unref();
}

/** "watchdog" or "listener" (see above); for tests and diagnostics. */
export function interruptMode(): "watchdog" | "listener" {
  return mode;
}

/** What a vm run interrupted by SIGINT throws (Node's words, which the session recognizes). */
const INTERRUPTED_BEFORE_THE_RUN = "Script execution was interrupted by `SIGINT` (before it started)";

/**
 * Runs `run`, a vm run with breakOnSigint (a cell, a blocking prompt), so that it registers with
 * the helper instead of starting it. An interrupt that came since the last look (while the cell
 * was being compiled, say) is delivered first, and the run does not start: it throws as if
 * interrupted at once.
 */
export function runBreakable<T>(run: () => T): T {
  if (depth === 0 && watchdog) {
    if (listenersTouched) settle();
    if (deliverPending()) throw new Error(INTERRUPTED_BEFORE_THE_RUN);
  }
  depth++;
  try {
    return run();
  } finally {
    depth--;
    if (depth === 0 && listenersTouched) settle();
  }
}

function listenersChanged(): void {
  listenersTouched = true;
  // A listener is added before it is counted (newListener): settle once the current run is over.
  if (depth === 0) queueMicrotask(() => depth === 0 && listenersTouched && settle());
}

/** Puts the mode right for the listeners there are now. Only between runs. */
function settle(): void {
  if (!watchdog) return;
  listenersTouched = false;
  const theirs = process.rawListeners("SIGINT").filter((l) => l !== kernelListener);
  withoutHooks(() => {
    if (theirs.length > 0) {
      if (mode === "listener") return;
      // Node's plain way. The helper stops (its handler gives way to Node's default), and libuv is
      // made to take the signal again: it only does when the first listener comes.
      process.removeAllListeners("SIGINT");
      const pending = watchdog!.stopSigintWatchdog();
      process.on("SIGINT", kernelListener);
      for (const l of theirs) process.on("SIGINT", l as (...args: unknown[]) => void);
      mode = "listener";
      if (pending) queueMicrotask(onInterrupt);
      return;
    }
    // No listener but (perhaps) ours: the helper takes the signal back.
    process.removeListener("SIGINT", kernelListener);
    let pending = false;
    if (mode === "watchdog") pending = watchdog!.stopSigintWatchdog(); // its handler was replaced by libuv's: restart it
    watchdog!.startSigintWatchdog();
    mode = "watchdog";
    if (pending) queueMicrotask(onInterrupt);
  });
}

/** Hands a SIGINT that came outside a run to the handler; true when there was one. */
function deliverPending(): boolean {
  if (mode !== "watchdog" || !watchdog || depth > 0 || !watchdog.watchdogHasPendingSigint()) return false;
  // Start and stop around the lasting start: the stop reads and clears the flag.
  watchdog.startSigintWatchdog();
  if (!watchdog.stopSigintWatchdog()) return false;
  onInterrupt();
  return true;
}

function withoutHooks(f: () => void): void {
  switching = true;
  try {
    f();
  } finally {
    switching = false;
  }
}

function nodeSigintWatchdog(): SigintWatchdog | null {
  if (process.platform === "win32") return null;
  try {
    const binding = (process as unknown as { binding(name: string): Partial<SigintWatchdog> }).binding("contextify");
    const { startSigintWatchdog, stopSigintWatchdog, watchdogHasPendingSigint } = binding;
    if (typeof startSigintWatchdog !== "function" || typeof stopSigintWatchdog !== "function" || typeof watchdogHasPendingSigint !== "function") return null;
    return binding as SigintWatchdog;
  } catch {
    return null; // a Node without process.binding("contextify")
  }
}

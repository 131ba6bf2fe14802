// Where a launch comes from and where it shows: the session its workers replay, and the hooks that
// show its events. The kernel implements it once (kernel/launch/kernel-launch-host.ts) for both
// `%%launch` cells and notebookLauncher() calls; without a kernel, a plain Node script is the host
// (script-host.ts), and `tslaunch run` prints to the terminal (terminal-output.ts).
import type { CellError, LaunchEvent, PrestartedWorkers, PriorOutcome, RecordedCell, WorkerSpec, World } from "../contract";

/** What a host may do to a running launch (interrupt, shutdown and exit hooks call these). */
export interface ActiveLaunchHandle {
  interrupt(): void;
  stop(): Promise<void>;
  abortSync(): void;
}

/** How a launch shows and who may stop it: what runLaunch needs from whoever started it. */
export interface LaunchHooks {
  /** Extra environment and Node flags for the workers. */
  workerEnv?: Record<string, string>;
  execArgv?: string[];
  /** Workers started ahead (the kernel's warm pool). */
  prestarted?: PrestartedWorkers;
  /** The output limit when the launch names none (a notebook cell's; none for a terminal). */
  defaultOutputLimit?: number;
  // In the order runLaunch calls them:
  /** Throws (a ReportedError) when a launch must be refused before anything starts: the device guard. */
  checkBeforeLaunch?(): void;
  /**
   * A launch (probe or real) started (`running` true) or ended: interrupt, shutdown and exit stop
   * every launch that is running, however many one cell started (Promise.all of two launches).
   */
  setActive(launch: ActiveLaunchHandle, running: boolean): void;
  /** The real launch is about to start its workers (the kernel opens its live view). */
  launchStarted?(spec: WorkerSpec): void;
  /** Shows a launch event (rank output, notices, states, the world, the end). */
  onEvent(event: LaunchEvent): void;
  /** The launch could not run to an end (e.g. the rendezvous store could not bind). */
  launchFailed?(error: CellError): void;
  /** The launch ended (however): e.g. the host refills its warm pool for the next one. */
  launchEnded?(world: World | null): void;
}

/** A host the function API launches from: the hooks, plus the session its workers replay. */
export interface LaunchHost extends LaunchHooks {
  /** The folder bare require() calls resolve from in workers. */
  cwd: string;
  /** Earlier successful cells, in order, and the JS of local modules they import. */
  replay(): RecordedCell[];
  sideOutputs(): { path: string; data: string }[];
  /** The running cell's execution count (stack traces name it). */
  executionCount(): number;
  /** JavaScript that finds the launched function in a worker (default: by name or by source). */
  locateFunction?(fn: Function): string;
  /** For a function compiled in the running cell: each of its lines' cell line (for stack traces). */
  cellLinesOf?(compiledSource: string): number[] | null;
  /** A script's earlier launches, for its workers (see PriorOutcome); and how this one ended. */
  priorOutcomes?(): string | undefined;
  recordOutcome?(outcome: PriorOutcome): void;
}

// On globalThis rather than in a module variable: a cell may load another copy of this package.
const KEY = Symbol.for("tslaunch.launchHost");

export function setLaunchHost(host: LaunchHost | null): void {
  (globalThis as Record<symbol, unknown>)[KEY] = host;
}

export function getLaunchHost(): LaunchHost | null {
  return ((globalThis as Record<symbol, unknown>)[KEY] as LaunchHost | undefined) ?? null;
}

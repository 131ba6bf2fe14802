// Where a launch started by the function API gets its session and shows its output. The kernel
// registers itself as the host (its session's recorded cells, the running cell's output); without
// a kernel, a plain Node script is the host: its main module is re-required in every worker.
import type { LaunchEvent } from "./agent";
import type { RecordedCell } from "./payload";
import type { LaunchOptions } from "./options";

export interface ActiveLaunchHandle {
  interrupt(): void;
  stop(): Promise<void>;
  abortSync(): void;
}

export interface LaunchHost {
  /** The folder bare require() calls resolve from in workers. */
  cwd: string;
  /** Earlier successful cells, in order, and the JS of local modules they import. */
  replay(): RecordedCell[];
  sideOutputs(): { path: string; data: string }[];
  /** The running cell's execution count (stack traces name it). */
  executionCount(): number;
  /** Shows a launch event in the running cell. */
  onEvent(event: LaunchEvent): void;
  /** Registers the running launch so interrupt, shutdown and exit can stop it. */
  setActive(launch: ActiveLaunchHandle | null): void;
  /** JavaScript that finds the launched function in a worker (default: by name or by source). */
  locateFunction?(fn: Function): string;
  /** For a function compiled in the running cell: each of its lines' cell line (for stack traces). */
  cellLinesOf?(compiledSource: string): number[] | null;
  /** Extra environment and Node flags for the workers. */
  workerEnv?: Record<string, string>;
  execArgv?: string[];
  /** A launch is about to start its workers (the kernel opens its live view). */
  launchStarted?(options: LaunchOptions, numProcesses: number): void;
  /** Shows that the ACCELERATE_DEBUG_MODE probe passed. */
  probePassed?(ms: number, worldSize: number): void;
  /** Throws when a launch must be refused before anything starts (the device guard). */
  checkBeforeLaunch?(): void;
}

// On globalThis rather than in a module variable: a cell may load another copy of this package.
const KEY = Symbol.for("tslaunch.launchHost");

export function setLaunchHost(host: LaunchHost | null): void {
  (globalThis as Record<symbol, unknown>)[KEY] = host;
}

export function getLaunchHost(): LaunchHost | null {
  return ((globalThis as Record<symbol, unknown>)[KEY] as LaunchHost | undefined) ?? null;
}

// The kernel as a launch host, once, for both ways a notebook launches: `%%launch` cells
// (launch-cell.ts) and notebookLauncher()/debugLauncher() called in a cell. It supplies the session
// the workers replay, refuses launches the device guard forbids, shows every launch event in the
// running cell, and keeps the live view of the launch.
import { createWarmPool, noticeLine, preReplayEnabled, restartLine, type ActiveLaunchHandle, type LaunchHost, type WarmPool } from "../../launcher/api";
import { parseBytes, specFor, type CellError, type LaunchEvent, type RecordedCell, type WorkerSpec } from "../../launcher/contract";
import type { CellOutput } from "../jupyter/cell-output";
import type { Session } from "../cells/session";
import type { DeviceGuard } from "./device-guard";
import { LaunchView } from "./launch-view";

/** A notebook cell shows at most this much of the ranks' output by default; the rest goes to log files. */
export const DEFAULT_CELL_OUTPUT_LIMIT = 4_000_000;

/** TSLAUNCH_OUTPUT_LIMIT (bytes, `4MB`, `0` for none), else DEFAULT_CELL_OUTPUT_LIMIT; a bad value is said on the kernel's stderr. */
export function outputLimitFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.TSLAUNCH_OUTPUT_LIMIT;
  if (raw === undefined || raw.trim() === "") return DEFAULT_CELL_OUTPUT_LIMIT;
  try {
    return parseBytes(raw, specFor("outputLimit")) ?? DEFAULT_CELL_OUTPUT_LIMIT;
  } catch (err) {
    process.stderr.write(`[tslaunch kernel] TSLAUNCH_OUTPUT_LIMIT: ${(err as Error).message.replace(/^--output_limit/, "the value")}; using ${DEFAULT_CELL_OUTPUT_LIMIT} bytes\n`);
    return DEFAULT_CELL_OUTPUT_LIMIT;
  }
}

export interface KernelSide {
  session: Session;
  guard: DeviceGuard;
  /** The running cell: its execution count and code (the guard names cells). */
  runningCell(): { executionCount: number; code: string };
  /** Where the running cell's outputs go. */
  output(): CellOutput;
  /** The kernel's handles on the launches now running (interrupt, shutdown and exit stop them). */
  setActive(launch: ActiveLaunchHandle, running: boolean): void;
}

export class KernelLaunchHost implements LaunchHost {
  private view: LaunchView | null = null;
  /** Warm workers for the next launch (launcher/group/warm-pool.ts); undefined when TSLAUNCH_WARM_POOL is off. */
  readonly prestarted: WarmPool | undefined;
  /** How many workers this node ran in the last launch: what the pool is refilled to. */
  private lastLocalWorld = 0;
  /** How much of the ranks' output a cell shows when the launch names no --output_limit. */
  readonly defaultOutputLimit = outputLimitFromEnv();

  constructor(private readonly kernel: KernelSide) {
    this.prestarted = createWarmPool({}, "[tslaunch kernel]");
    // TSLAUNCH_WARM_POOL_START=N: warm workers from the kernel's start (for a notebook that launches N).
    const start = Number(process.env.TSLAUNCH_WARM_POOL_START ?? 0);
    if (Number.isInteger(start) && start > 0) this.lastLocalWorld = start;
  }

  /** The kernel is idle: start warm workers for a launch like the last one (never while a cell runs). */
  refillWarmPool(): void {
    if (this.lastLocalWorld <= 0 || !this.prestarted) return;
    this.prestarted.fill(this.lastLocalWorld, [], this.cwd);
    // Pre-replay: the warm workers replay the session ahead, unless it is off or the session has
    // touched a device (the replay could take one too; the next launch is refused anyway).
    if (this.preReplay && !this.kernel.guard.firstTouch) {
      const env = Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined));
      this.prestarted.prepare({ cells: this.kernel.session.recorded, sideOutputs: this.sideOutputs(), cwd: this.cwd, env });
    }
  }

  /** TSLAUNCH_PRE_REPLAY=off keeps warm workers blank (see launcher/group/warm-pool.ts). */
  private readonly preReplay = preReplayEnabled();

  /** Ends the warm workers (shutdown, restart, exit). */
  disposeWarmPool(): void {
    this.prestarted?.dispose();
  }

  get cwd(): string {
    return this.kernel.session.cwd;
  }

  replay(): RecordedCell[] {
    return this.kernel.session.recorded;
  }

  sideOutputs(): { path: string; data: string }[] {
    return [...this.kernel.session.sideOutputs].map(([path, data]) => ({ path, data }));
  }

  executionCount(): number {
    return this.kernel.runningCell().executionCount;
  }

  cellLinesOf(source: string): number[] | null {
    return this.kernel.session.cellLinesOf(source);
  }

  checkBeforeLaunch(): void {
    const { executionCount, code } = this.kernel.runningCell();
    this.kernel.guard.checkBeforeLaunch(executionCount, code);
  }

  setActive(launch: ActiveLaunchHandle, running: boolean): void {
    this.kernel.setActive(launch, running);
  }

  launchStarted(spec: WorkerSpec): void {
    this.view = new LaunchView(spec, (content, update) => this.kernel.output().display(content, update));
    this.view.open();
  }

  onEvent(event: LaunchEvent): void {
    showLaunchEvent(event, this.kernel.output());
    this.view?.onEvent(event);
    if (event.type === "world") this.lastLocalWorld = event.world.ranks.filter((r) => r.nodeRank === 0).length;
    if (event.type === "done") this.view = null;
  }

  launchFailed(error: CellError): void {
    this.view?.abort(error.evalue);
    this.view = null;
  }
}

/** How a launch event shows in the cell: rank output as streams, worker displays, notices, restarts. */
export function showLaunchEvent(event: LaunchEvent, output: CellOutput): void {
  switch (event.type) {
    case "output":
      output.stream(event.name, event.text);
      break;
    case "display":
      output.display({ ...event.display, metadata: { ...event.display.metadata, tslaunch: { rank: event.rank } } }, event.update);
      break;
    case "notice":
      output.stream("stderr", noticeLine(event.text));
      break;
    case "restarting":
      output.stream("stderr", restartLine(event));
      break;
    default:
      break;
  }
}

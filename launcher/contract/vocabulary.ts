// The launch's nouns, in one place (as torch elastic keeps WorkerSpec, WorkerState, WorkerGroup and
// RunResult together in agent/server/api.py): what a launch is asked to do, the world it forms, the
// states of a launch and of its workers, what it reports while it runs, and how it ended.
// Everything that starts, shows or reports a launch speaks these words.
import type { ChildProcess } from "child_process";
import type { LaunchOptions } from "./options";
import type { LaunchPayload, RecordedCell } from "./payload";
import type { DisplayPayload, ErrorPayload } from "./protocol";

/** What a launch is asked to do. */
export interface WorkerSpec {
  options: LaunchOptions;
  /** Processes on this node. */
  numProcesses: number;
  payload: LaunchPayload;
  /** Extra environment for every worker (on top of process.env and the torchrun variables). */
  env?: Record<string, string>;
  /** Node flags for the workers (a script run with a TypeScript loader passes its own). */
  execArgv?: string[];
  /** SIGTERM, then SIGKILL after this many ms (default STOP_GRACE_MS). */
  stopGraceMs?: number;
  /** The shared secret for launches across nodes (else TSLAUNCH_SECRET). */
  secret?: string;
  /** Workers started before the launch asked (the kernel's warm pool); ranks without one are spawned. */
  prestarted?: PrestartedWorkers;
  /** Bytes of output shown before the rest goes to log files only (resolved: options, else the host's default; 0 none). */
  outputLimit?: number;
}

/** A source of already-running worker processes (group/warm-pool.ts). */
export interface PrestartedWorkers {
  /** A worker given this rank's complete environment and folder, or undefined (spawn one instead). */
  take(execArgv: string[], assignment: WarmTake): ChildProcess | undefined;
  /** Resolves when no warm worker is in the middle of replaying ahead (bounded wait). */
  settled?(): Promise<void>;
}

/** What a launch asks of a warm worker: a fresh rank's environment and folder, and the session it replays. */
export interface WarmTake {
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** The launch's replayed cells and local modules: a pre-replayed worker must have replayed a prefix of them. */
  replay?: RecordedCell[];
  sideOutputs?: { path: string; data: string }[];
}

/**
 * One worker process's life. Each state says what it means and what may follow it.
 * - `starting`:  spawned, not yet connected to the agent → replaying | running | succeeded | failed | stopped
 * - `replaying`: connected; replaying the session's earlier cells → running | succeeded | failed | stopped
 * - `running`:   running the body → succeeded | failed | stopped
 * - `succeeded`: exited with code 0 (final)
 * - `failed`:    exited non-zero or by a signal the launch did not send (final)
 * - `stopped`:   ended by the launch (another rank failed, interrupt, shutdown) (final)
 */
export type WorkerState = "starting" | "replaying" | "running" | "succeeded" | "failed" | "stopped";

export const FINAL_WORKER_STATES: readonly WorkerState[] = ["succeeded", "failed", "stopped"];

/** Where one rank lives in the world, as the agent decided it. */
export interface RankPlacement {
  rank: number;
  nodeRank: number;
  localRank: number;
  /** The prefix of this rank's lines (the log_line_prefix_template, rendered). */
  prefix: string;
}

/** The world of one attempt, published once it is formed: consumers read it, never recompute it. */
export interface World {
  /** A random id of the launch, the same on every node (names its shared memory, keys its data plane). */
  launchId: string;
  attempt: number;
  restartCount: number;
  worldSize: number;
  numNodes: number;
  masterAddr: string;
  /** MASTER_PORT as handed to the workers (a busy --use_port is replaced on one node). */
  masterPort: number;
  /** Rank-ordered. */
  ranks: RankPlacement[];
}

/**
 * One launch's life. Changed in one place (Launch.setState), which emits a `launch-state` event.
 * - `starting`:   creating the launch folder and channel → gathering | running | done
 * - `gathering`:  waiting for the other nodes to join (multi-node) → running | done
 * - `running`:    an attempt's workers run; the agent watches them → stopping | done
 * - `stopping`:   a rank failed or a stop was asked: the world is being stopped → restarting | done
 * - `restarting`: restarts are left: the next attempt is about to start → running | done
 * - `done`:       every worker has ended and every resource is released (final); see RunResult
 */
export type LaunchState = "starting" | "gathering" | "running" | "stopping" | "restarting" | "done";

export type LaunchOutcome = "succeeded" | "failed" | "interrupted";

export interface WorkerInfo {
  rank: number;
  localRank: number;
  nodeRank: number;
  pid: number | undefined;
  state: WorkerState;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** The error the worker reported before it exited, its stack mapped to cell lines. */
  error?: ErrorPayload;
  /** Milliseconds since the launch began when the exit was seen: orders the failures. */
  endedAt?: number;
  restartCount: number;
}

export interface RankFailure {
  rank: number;
  nodeRank: number;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  error?: ErrorPayload;
  endedAt?: number;
}

/** How a launch ended. */
export interface RunResult {
  outcome: LaunchOutcome;
  /** Failures of the last attempt, the first one first. */
  failures: RankFailure[];
  /** The function API's return values, indexed by rank (worldSize long when the launch succeeded). */
  returnValues: unknown[];
  restarts: number;
  worldSize: number;
  /** The last attempt's world (null when no attempt started: e.g. interrupted while gathering). */
  world: World | null;
  /** Messages dropped because they were unsigned or forged (log channel and store). */
  droppedMessages: number;
  /** Each rank's last state in the last attempt (absent for a rank that never started). */
  rankStates?: Record<number, WorkerState>;
}

/** What a worker group reports; the agent forwards these (to the kernel, the CLI or node 0). */
export type GroupEvent =
  | { type: "started"; rank: number; pid: number; restartCount: number; nodeRank: number }
  | { type: "output"; rank: number; name: "stdout" | "stderr"; text: string }
  | { type: "display"; rank: number; display: DisplayPayload; update: boolean }
  | { type: "state"; worker: WorkerInfo }
  | { type: "result"; rank: number; value: Buffer };

/** What a launch reports while it runs. */
export type LaunchEvent =
  | Exclude<GroupEvent, { type: "result" }>
  | { type: "launch-state"; state: LaunchState; previous: LaunchState }
  | { type: "world"; world: World }
  | { type: "notice"; text: string }
  | { type: "restarting"; restartCount: number; maxRestarts: number; reason: string }
  | { type: "done"; result: RunResult };

export function describeFailure(f: RankFailure): string {
  const where = f.nodeRank > 0 ? ` on node ${f.nodeRank}` : "";
  if (f.error?.ename === "NodeLost") return `rank ${f.rank}${where} was lost with its node: ${f.error.evalue}`;
  if (f.signal) return `rank ${f.rank}${where} was killed by ${f.signal}`;
  return `rank ${f.rank}${where} exited with code ${f.exitCode}`;
}

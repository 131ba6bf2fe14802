// The data the tslaunch kernel sends under LAUNCH_VIEW_MIME (kernel/launch/launch-view.ts, version 1):
// one display per launch, updated in place (update_display_data with the same display id).

export const LAUNCH_VIEW_MIME = 'application/vnd.tslaunch.launch.v1+json';

/** The launch's state as the kernel publishes it (launcher/contract/vocabulary.ts), then its outcome. */
export type LaunchState = 'starting' | 'gathering' | 'replaying' | 'running' | 'stopping' | 'restarting' | 'succeeded' | 'failed' | 'interrupted';
export type RankState = 'starting' | 'replaying' | 'running' | 'succeeded' | 'failed' | 'stopped';

export interface RankRow {
  rank: number;
  localRank: number;
  node: number;
  pid: number | null;
  state: RankState;
  /** ms since the launch started, when this rank's current process started / ended. */
  startedMs: number | null;
  endedMs: number | null;
  restarts: number;
  exitCode: number | null;
  signal: string | null;
  lastLine: string;
  /** Every line this rank writes to the cell's log starts with this. */
  prefix: string;
}

export interface LaunchModel {
  version: 1;
  launchId: string;
  state: LaunchState;
  numProcesses: number;
  numNodes: number;
  worldSize: number;
  backend: string;
  mixedPrecision: string;
  startedAt: number;
  elapsedMs: number;
  restarts: number;
  maxRestarts: number;
  error: string | null;
  ranks: RankRow[];
}

const TERMINAL: ReadonlySet<string> = new Set(['succeeded', 'failed', 'interrupted']);

/** true once the launch is over: no more updates will come, nothing to stop. */
export function isEnded(state: string): boolean {
  return TERMINAL.has(state);
}

/** Accepts what a kernel sent (or a saved notebook holds); null when it is not a v1 launch model. */
export function asLaunchModel(data: unknown): LaunchModel | null {
  if (!data || typeof data !== 'object') return null;
  const m = data as Partial<LaunchModel>;
  if (m.version !== 1 || typeof m.state !== 'string' || !Array.isArray(m.ranks)) return null;
  return m as LaunchModel;
}

/** "0.4 s", "12.3 s", "2:05", "1:02:05". */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0) return '–';
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const total = Math.floor(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

/** "exit 0", "exit 3", "SIGKILL", or "" while the rank runs. */
export function formatExit(row: RankRow): string {
  if (row.signal) return row.signal;
  if (row.exitCode !== null && row.exitCode !== undefined) return `exit ${row.exitCode}`;
  return '';
}

/** A rank's elapsed time at launch time `nowMs` (ms since the launch started). */
export function rankElapsed(row: RankRow, nowMs: number): number | null {
  if (row.startedMs === null || row.startedMs === undefined) return null;
  return Math.max(0, (row.endedMs ?? nowMs) - row.startedMs);
}

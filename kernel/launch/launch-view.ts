// The live view of a launch: one display per launch with its own versioned MIME type (rendered by
// the JupyterLab extension) and a text/plain summary for every other frontend, updated in place
// (update_display_data, same display_id) as ranks start, restart, finish or fail: a few updates a
// second at most, whatever the log volume. Rank logs stay ordinary stream output. The view mirrors
// what the launch publishes (its state, its world); it guesses nothing.
import { randomBytes } from "crypto";
import type { LaunchEvent, LaunchState, RunResult, WorkerSpec, WorkerState, World } from "../../launcher/contract";
import type { DisplayContent } from "../jupyter/cell-output";

export const LAUNCH_VIEW_MIME = "application/vnd.tslaunch.launch.v1+json";
/**
 * The end-of-launch note for clients that drop display updates (jupyter console): a display_data
 * whose text/plain is the final summary and whose text/html is empty. Frontends that render HTML
 * (JupyterLab, Notebook, VS Code) show nothing for it (they already show the updated view); a
 * text-only client prints the final state. This MIME type names it (tests and tools skip it).
 */
export const LAUNCH_END_MIME = "application/vnd.tslaunch.launch-end.v1+json";
const MIN_UPDATE_MS = 250;
/** While a launch runs, its clock moves about once a second even when no rank prints anything. */
const TICK_MS = 1000;
const LAST_LINE_CHARS = 200;

/** The launch's state while it runs (LaunchState without `done`), then how it ended. */
export type LaunchViewState = Exclude<LaunchState, "done"> | "replaying" | RunResult["outcome"];

/**
 * What the header says while the group runs: the ranks' own progress, so header and rows agree —
 * `starting` until a rank connects, `replaying` while ranks replay the session and none runs the
 * body yet, then `running`.
 */
function shownState(m: LaunchViewModel): LaunchViewState {
  if (m.state !== "running" || m.ranks.length === 0 || m.ranks.some((r) => r.state === "running")) return m.state;
  if (m.ranks.some((r) => r.state === "replaying")) return "replaying";
  return m.ranks.every((r) => r.state === "starting") ? "starting" : m.state;
}

export interface RankRow {
  rank: number;
  localRank: number;
  node: number;
  pid: number | null;
  state: WorkerState;
  /** ms since the launch started, when this rank's current process started / ended. */
  startedMs: number | null;
  endedMs: number | null;
  restarts: number;
  exitCode: number | null;
  signal: string | null;
  lastLine: string;
  /** The prefix of this rank's lines in the cell's log (for filtering by rank). */
  prefix: string;
}

export interface LaunchViewModel {
  version: 1;
  launchId: string;
  state: LaunchViewState;
  numProcesses: number;
  numNodes: number;
  worldSize: number;
  backend: string;
  mixedPrecision: string;
  /** Wall-clock start (ms since epoch) and elapsed ms at the time of this update. */
  startedAt: number;
  elapsedMs: number;
  restarts: number;
  maxRestarts: number;
  ranks: RankRow[];
  /** One-line summary of the failure, when the launch failed. */
  error: string | null;
}

export class LaunchView {
  private readonly model: LaunchViewModel;
  private readonly displayId = `tslaunch-${randomBytes(6).toString("hex")}`;
  private readonly t0 = performance.now();
  private shown = false;
  private lastSent = 0;
  private timer: NodeJS.Timeout | null = null;
  private ticker: NodeJS.Timeout | null = null;

  constructor(spec: Pick<WorkerSpec, "options" | "numProcesses">, private readonly show: (content: DisplayContent, update: boolean) => void) {
    const { options, numProcesses } = spec;
    this.model = {
      // Until the world is formed (other nodes may join with other counts), assume equal nodes.
      version: 1, launchId: this.displayId, state: "starting", numProcesses, numNodes: options.numNodes, worldSize: numProcesses * options.numNodes,
      backend: options.rdzvBackend, mixedPrecision: options.mixedPrecision, startedAt: Date.now(), elapsedMs: 0, restarts: 0,
      maxRestarts: options.maxRestarts, ranks: [], error: null,
    };
  }

  /** A new attempt's world: one row per rank, placed where the agent put it. */
  private setWorld(world: World): void {
    this.model.worldSize = world.worldSize;
    this.model.numNodes = world.numNodes;
    this.model.restarts = world.restartCount;
    const previous = new Map(this.model.ranks.map((r) => [r.rank, r]));
    this.model.ranks = world.ranks.map(({ rank, localRank, nodeRank, prefix }) => ({
      rank, localRank, node: nodeRank, prefix, pid: null, state: "starting", startedMs: null, endedMs: null, restarts: world.restartCount,
      exitCode: null, signal: null, lastLine: previous.get(rank)?.lastLine ?? "",
    }));
  }

  /** The row of a rank; events arrive only after the world that placed it. */
  private row(rank: number): RankRow | undefined {
    return this.model.ranks.find((r) => r.rank === rank);
  }

  /** Shows the view at once (before any worker starts). */
  open(): void {
    this.publish(true);
    this.ticker = setInterval(() => this.schedule(), TICK_MS);
    this.ticker.unref();
  }

  private stopTicking(): void {
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = null;
  }

  onEvent(event: LaunchEvent): void {
    const now = performance.now() - this.t0;
    switch (event.type) {
      case "launch-state":
        if (event.state === "done") return; // the `done` event carries the outcome
        this.model.state = event.state;
        break;
      case "world":
        this.setWorld(event.world);
        break;
      case "started": {
        const row = this.row(event.rank);
        if (!row) return;
        row.pid = event.pid;
        row.node = event.nodeRank;
        row.startedMs = now;
        row.endedMs = null;
        row.exitCode = null;
        row.signal = null;
        row.restarts = event.restartCount;
        break;
      }
      case "state": {
        const row = this.row(event.worker.rank);
        if (!row) return;
        row.state = event.worker.state;
        row.node = event.worker.nodeRank;
        if (event.worker.pid) row.pid = event.worker.pid;
        if (["succeeded", "failed", "stopped"].includes(event.worker.state)) {
          row.endedMs = now;
          row.exitCode = event.worker.exitCode;
          row.signal = event.worker.signal;
        }
        break;
      }
      case "output": {
        // The last non-empty line, without its prefix: a glance at what the rank is doing.
        const lines = event.text.split("\n").filter((l) => l.length > 0);
        const row = this.row(event.rank);
        const last = lines[lines.length - 1];
        if (row && last !== undefined) row.lastLine = (last.startsWith(row.prefix) ? last.slice(row.prefix.length) : last).slice(0, LAST_LINE_CHARS);
        break;
      }
      case "restarting":
        this.model.restarts = event.restartCount;
        break;
      case "done":
        this.finish(event.result);
        return;
      default:
        return;
    }
    this.schedule();
  }

  /** The final state, sent at once. */
  finish(result: RunResult, error?: string): void {
    this.stopTicking();
    this.model.state = result.outcome;
    this.model.restarts = result.restarts;
    this.model.worldSize = result.worldSize || this.model.worldSize;
    if (result.failures[0]) {
      const f = result.failures[0];
      this.model.error = error ?? `rank ${f.rank} ${f.signal ? `was killed by ${f.signal}` : `exited with code ${f.exitCode}`}${f.error ? `: ${f.error.ename}: ${f.error.evalue}` : ""}`;
    }
    this.publish(false);
    this.publishEnd();
  }

  /** The launch ended before its workers started (refused, rendezvous failed). */
  abort(message: string): void {
    this.stopTicking();
    this.model.state = "failed";
    this.model.error = message;
    this.publish(false);
    this.publishEnd();
  }

  /** The final state once more, for clients that ignore updates (see LAUNCH_END_MIME). */
  private publishEnd(): void {
    const text = summaryText(this.model);
    this.show({ data: { [LAUNCH_END_MIME]: { launchId: this.displayId, state: this.model.state }, "text/html": "", "text/plain": text }, metadata: {} }, false);
  }

  private schedule(): void {
    if (this.timer) return;
    const wait = Math.max(0, MIN_UPDATE_MS - (performance.now() - this.lastSent));
    this.timer = setTimeout(() => {
      this.timer = null;
      this.publish(false);
    }, wait);
  }

  private publish(first: boolean): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.lastSent = performance.now();
    this.model.elapsedMs = Math.round(performance.now() - this.t0);
    const shown = { ...structuredClone(this.model), state: shownState(this.model) };
    // The first text claims no state that will change: a client that drops updates (jupyter
    // console) keeps showing it. Every later one is the full summary, updated in place.
    const content: DisplayContent = {
      data: { [LAUNCH_VIEW_MIME]: shown, "text/plain": first ? openingText(shown) : summaryText(shown) },
      metadata: {},
      transient: { display_id: this.displayId },
    };
    this.show(content, !first && this.shown);
    this.shown = true;
  }
}

function seconds(ms: number | null): string {
  return ms === null ? "-" : `${(ms / 1000).toFixed(1)} s`;
}

/** The first display's text: what was launched, nothing that will change. */
export function openingText(m: LaunchViewModel): string {
  return `tslaunch: launch of ${m.worldSize} rank${m.worldSize > 1 ? "s" : ""} on ${m.numNodes} node${m.numNodes > 1 ? "s" : ""} (${m.backend})`;
}

/** What classic Notebook, VS Code and nbconvert show, updated in place. */
export function summaryText(m: LaunchViewModel): string {
  const header =
    `tslaunch: ${m.worldSize} rank${m.worldSize > 1 ? "s" : ""} on ${m.numNodes} node${m.numNodes > 1 ? "s" : ""} (${m.backend}), ` +
    `${m.state}, ${seconds(m.elapsedMs)}, restarts ${m.restarts}/${m.maxRestarts}`;
  const rows = m.ranks.map((r) => {
    const end = r.signal ? `signal ${r.signal}` : r.exitCode !== null ? `exit ${r.exitCode}` : "";
    const elapsed = r.startedMs === null ? null : (r.endedMs ?? m.elapsedMs) - r.startedMs;
    return `  rank ${String(r.rank).padEnd(3)} node ${r.node}  pid ${String(r.pid ?? "-").padEnd(7)} ${r.state.padEnd(9)} ${seconds(elapsed).padEnd(7)} ${end}`.trimEnd();
  });
  return [header, ...rows, ...(m.error ? [`  failed: ${m.error}`] : [])].join("\n");
}

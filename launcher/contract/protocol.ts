// The worker <-> agent protocol: every message's shape, in one place. On the wire each message is
// sealed (sealed-link.ts) with the per-launch key, which a worker reads from its lifeline.
import type { RecordedCell } from "./payload";

export interface DisplayPayload {
  data: Record<string, unknown>;
  metadata: Record<string, unknown>;
  transient?: { display_id?: string };
}

export interface ErrorPayload {
  ename: string;
  evalue: string;
  stack: string;
  /** "replay" when an earlier cell failed while the worker replayed the session. */
  phase: "replay" | "body";
  /** The execution count of the replayed cell that failed (phase "replay"). */
  cell?: number;
}

export type WorkerMessage =
  | { type: "hello"; rank: number; pid: number }
  /** The session's replay is done: the body runs now. */
  | { type: "body" }
  | { type: "stream"; name: "stdout" | "stderr"; text: string }
  | { type: "display"; update: boolean; display: DisplayPayload }
  /** The function API's return value; the value itself travels v8-serialized in the binary frame. */
  | { type: "result" }
  | { type: "error"; error: ErrorPayload }
  /**
   * The control plane's one rendezvous: an all-gather of one short string per rank. The worker waits
   * for `exchanged` with the same seq. `waitForEveryone()` is an exchange of ""; the collectives use
   * it to publish their endpoints when they connect.
   */
  | { type: "exchange"; scope: ExchangeScope; seq: number; value: string }
  /** The worker has nothing more to send and waits for an `ack` before it exits. */
  | { type: "eos" };

/**
 * Exchanges are numbered per scope: the user's barriers and the collectives' own set-up each meet
 * their counterparts on the other ranks, however the two interleave on one rank.
 */
export type ExchangeScope = "barrier" | "collectives";

export type AgentMessage =
  | { type: "ack" }
  /** Every rank's value of exchange `seq`, rank-ordered. */
  | { type: "exchanged"; scope: ExchangeScope; seq: number; values: string[] }
  /** Exchange `seq` waited longer than the collective timeout: these ranks never arrived. */
  | { type: "exchange-failed"; scope: ExchangeScope; seq: number; missing: number[]; waitedMs: number }
  /** A rank of the world died: pending and later collectives fail now, not at the timeout. */
  | { type: "peer-failed"; rank: number; reason: string };

/**
 * The keys a worker gets over its lifeline (fd 3), never through its environment: another process
 * of the same user can read /proc/PID/environ but not a pipe only the agent and the worker hold.
 */
export interface LaunchKeys {
  /** Signs the worker's log channel (hex). */
  channel: string;
  /** Signs and encrypts the collectives between nodes (hex). */
  collectives: string;
}

/** Environment variables through which the agent hands a worker its launch. */
export const ENV = {
  endpoint: "TSLAUNCH_AGENT_ENDPOINT",
  payload: "TSLAUNCH_PAYLOAD",
  launchId: "TSLAUNCH_LAUNCH_ID",
  /** "1" in every worker: notebookLauncher there does not launch again. */
  inWorker: "TSLAUNCH_IN_WORKER",
  /** In a worker started for a script: which notebookLauncher call (0-based) this launch is. */
  scriptCall: "TSLAUNCH_SCRIPT_CALL",
  /** The collectives' setup: the world's ranks per node (JSON), this node's data-plane address, the
   * attempt's shared-memory name prefix, the key that signs data between nodes, the timeout (ms). */
  ranksByNode: "TSLAUNCH_RANKS_BY_NODE",
  dataHost: "TSLAUNCH_DATA_HOST",
  segmentPrefix: "TSLAUNCH_SEGMENT_PREFIX",
  collectiveTimeoutMs: "TSLAUNCH_COLLECTIVE_TIMEOUT_MS",
} as const;

/** What the warm pool sends a warm worker: the complete environment and folder of a fresh rank. */
export interface WarmAssignment {
  type: "tslaunch-assignment";
  env: Record<string, string>;
  cwd: string;
  /** What a fresh worker's command line shows (an idle warm worker's title is WARM_TITLE). */
  title: string;
  /** How many of the launch's replayed cells this worker has already replayed (pre-replay). */
  replayed: number;
}

/**
 * Pre-replay (group/warm-pool.ts → worker/pre-replay.ts): the session's next cells for an idle warm
 * worker to replay ahead of its launch, in the environment and folder cells see now.
 */
export interface WarmPrepare {
  type: "tslaunch-prepare";
  /** Index in the session of cells[0]: the worker has replayed exactly the cells before it. */
  first: number;
  cells: RecordedCell[];
  env: Record<string, string>;
  cwd: string;
  sideOutputs: { path: string; data: string }[];
  /** Variables a launch sets per rank: a cell that reads one cannot be replayed ahead. */
  launchKeys: string[];
}

/** A warm worker's answer to a WarmPrepare. */
export type WarmReport =
  /** `replayed` cells are done; `reads` maps each variable a cell read to the first cell (index) that read it. */
  | { type: "tslaunch-prepared"; replayed: number; reads: Record<string, number> }
  /** Cell `at` did what may not happen before a rank is assigned (the reason says what): the worker exits. */
  | { type: "tslaunch-spoiled"; at: number; reason: string };

/** The title an idle warm worker shows in ps and /proc/PID/cmdline. */
export const WARM_TITLE = "tslaunch-warm";

/** globalThis flag: true while a worker replays the session (a replayed launch does nothing). */
export const REPLAYING = Symbol.for("tslaunch.replaying");

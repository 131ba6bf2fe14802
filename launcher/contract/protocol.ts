// The worker <-> agent protocol: every message's shape, its encoding, and its signature, in one place.
// Frames on the wire: [json, binary?, signature]. The signature is HMAC-SHA256 with the per-launch key
// (handed to workers in TSLAUNCH_LAUNCH_KEY) over the json and binary frames; anything else is dropped.
import { createHmac, timingSafeEqual } from "crypto";

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

export function signFrames(key: Buffer, frames: Buffer[]): Buffer {
  const hmac = createHmac("sha256", key);
  for (const f of frames) hmac.update(f);
  return hmac.digest();
}

export function encodeMessage(key: Buffer, message: WorkerMessage | AgentMessage, binary?: Buffer): Buffer[] {
  const frames: Buffer[] = [Buffer.from(JSON.stringify(message), "utf8")];
  if (binary) frames.push(binary);
  return [...frames, signFrames(key, frames)];
}

export interface Decoded<M> {
  message: M;
  binary?: Buffer;
}

/** Returns null for a message that is unsigned, forged, or malformed. */
export function decodeMessage<M = WorkerMessage>(key: Buffer, frames: Buffer[]): Decoded<M> | null {
  if (frames.length < 2 || frames.length > 3) return null;
  const body = frames.slice(0, -1);
  const signature = frames[frames.length - 1];
  const expected = signFrames(key, body);
  if (signature.length !== expected.length || !timingSafeEqual(signature, expected)) return null;
  try {
    return { message: JSON.parse(body[0].toString("utf8")) as M, binary: body[1] };
  } catch {
    return null;
  }
}

/** Environment variables through which the agent hands a worker its launch. */
export const ENV = {
  endpoint: "TSLAUNCH_AGENT_ENDPOINT",
  key: "TSLAUNCH_LAUNCH_KEY",
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
  collectiveKey: "TSLAUNCH_COLLECTIVE_KEY",
  collectiveTimeoutMs: "TSLAUNCH_COLLECTIVE_TIMEOUT_MS",
} as const;

/** What the warm pool sends a warm worker: the complete environment and folder of a fresh rank. */
export interface WarmAssignment {
  type: "tslaunch-assignment";
  env: Record<string, string>;
  cwd: string;
  /** What a fresh worker's command line shows (an idle warm worker's title is WARM_TITLE). */
  title: string;
}

/** The title an idle warm worker shows in ps and /proc/PID/cmdline. */
export const WARM_TITLE = "tslaunch-warm";

/** globalThis flag: true while a worker replays the session (a replayed launch does nothing). */
export const REPLAYING = Symbol.for("tslaunch.replaying");

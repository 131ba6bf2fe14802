// The node <-> node protocol of a launch across nodes: what a joined agent (`tslaunch agent`) and
// the store hosted by node 0 say to each other. Encrypted by ZeroMQ CURVE under a key derived from
// the shared secret, and every message sealed (sealed-link.ts) with that secret, a per-node nonce
// the store chose for this launch, and a sequence number (docs/decisions.md, "Security model").
//
// The opening: the node says `hello`, the store answers with a fresh `challenge` nonce, the node
// `join`s under that nonce. A join recorded from an earlier launch carries an old nonce: refused.
import type { LaunchOptions } from "./options";
import type { ExchangeScope } from "./protocol";
import type { LaunchPayload } from "./payload";
import type { GroupEvent, RankFailure, World } from "./vocabulary";

/** Node -> store. */
export type NodeMessage =
  | { type: "hello" }
  | { type: "join"; rdzvId: string; nodeRank: number | null; numProcesses: number; host: string }
  | { type: "event"; event: Exclude<GroupEvent, { type: "result" }> }
  | { type: "result"; rank: number }
  | { type: "exchange"; rank: number; scope: ExchangeScope; seq: number; value: string }
  | { type: "group"; attempt: number; outcome: "succeeded" | "failed" | "stopped"; failures: RankFailure[] }
  | { type: "heartbeat" };

/** Store -> node. */
export type StoreMessage =
  /** The answer to `hello`: join under this nonce (the session of every later message). */
  | { type: "challenge"; nonce: string }
  | {
      type: "welcome"; nodeRank: number; numNodes: number; rankOffset: number; worldSize: number; options: LaunchOptions; payload: LaunchPayload;
      /** The launch's extra worker environment (function API call index, debugLauncher's CPU-only settings). */
      env: Record<string, string>;
    }
  /** Start this attempt's workers: the world says which ranks are this node's, with their prefixes. */
  | { type: "start"; attempt: number; restartCount: number; world: World; nodeRank?: number }
  | { type: "exchanged"; scope: ExchangeScope; seq: number; values: string[] }
  | { type: "exchange-failed"; scope: ExchangeScope; seq: number; missing: number[]; waitedMs: number }
  | { type: "peer-failed"; rank: number; reason: string }
  | { type: "stop"; attempt: number }
  | { type: "finish"; outcome: string }
  /** `fatal`: the agent's own settings are wrong (secret, rdzv_id); else it may try again later. */
  | { type: "refused"; reason: string; fatal: boolean };


// The environment a worker sees: torchrun's variables (so code written for torch elastic finds what
// it expects) and Accelerate's. Accelerate itself exports mixed_precision under a name no reader
// uses; here ACCELERATE_MIXED_PRECISION is the one the worker API reads.
import { ENV, type LaunchOptions } from "../contract";

export interface WorkerPlace {
  rank: number;
  localRank: number;
  localWorldSize: number;
  worldSize: number;
  nodeRank: number;
  restartCount: number;
  /** MASTER_PORT as the agent chose it (the world's). */
  masterPort: number;
  /** Nodes in this attempt's world (elastic membership changes it between attempts). */
  numNodes?: number;
}

export function workerEnvironment(o: LaunchOptions, place: WorkerPlace): Record<string, string> {
  const worldSize = place.worldSize;
  return {
    RANK: String(place.rank),
    LOCAL_RANK: String(place.localRank),
    WORLD_SIZE: String(worldSize),
    LOCAL_WORLD_SIZE: String(place.localWorldSize),
    GROUP_RANK: String(place.nodeRank),
    GROUP_WORLD_SIZE: String(place.numNodes ?? o.numNodes),
    ROLE_NAME: "default",
    ROLE_RANK: String(place.rank),
    ROLE_WORLD_SIZE: String(worldSize),
    MASTER_ADDR: o.masterAddr,
    MASTER_PORT: String(place.masterPort),
    TORCHELASTIC_RESTART_COUNT: String(place.restartCount),
    TORCHELASTIC_MAX_RESTARTS: String(o.maxRestarts),
    TORCHELASTIC_RUN_ID: o.rdzvId,
    ACCELERATE_MIXED_PRECISION: o.mixedPrecision,
  };
}

/**
 * Every variable a launch sets per rank (torchrun's, Accelerate's, the device a rank gets and
 * tslaunch's own): a warm worker's pre-replay stops at a cell that reads one (worker/pre-replay.ts).
 */
export const PER_LAUNCH_ENV: readonly string[] = [
  ...Object.keys(workerEnvironment({ masterAddr: "", maxRestarts: 0, rdzvId: "", mixedPrecision: "no", numNodes: 1 } as LaunchOptions, {
    rank: 0, localRank: 0, localWorldSize: 1, worldSize: 1, nodeRank: 0, restartCount: 0, masterPort: 0,
  })),
  "CUDA_VISIBLE_DEVICES", "TSLAUNCH_DEVICE",
  ...Object.values(ENV),
];

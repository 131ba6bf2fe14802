// The environment a worker sees: torchrun's variables (so code written for torch elastic finds what
// it expects) and Accelerate's. Accelerate itself exports mixed_precision under a name no reader
// uses; here ACCELERATE_MIXED_PRECISION is the one the worker API reads.
import type { LaunchOptions } from "../contract";

export interface WorkerPlace {
  rank: number;
  localRank: number;
  localWorldSize: number;
  worldSize: number;
  nodeRank: number;
  restartCount: number;
  /** MASTER_PORT as the agent chose it (the world's). */
  masterPort: number;
}

export function workerEnvironment(o: LaunchOptions, place: WorkerPlace): Record<string, string> {
  const worldSize = place.worldSize;
  return {
    RANK: String(place.rank),
    LOCAL_RANK: String(place.localRank),
    WORLD_SIZE: String(worldSize),
    LOCAL_WORLD_SIZE: String(place.localWorldSize),
    GROUP_RANK: String(place.nodeRank),
    GROUP_WORLD_SIZE: String(o.numNodes),
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

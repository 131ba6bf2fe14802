// Forming an attempt's world: which global ranks each node runs, and each rank's line prefix. The
// agent forms it once per attempt and publishes it (a `world` event, and to joined nodes in their
// `start` message); every consumer reads it instead of recomputing ranks from counts.
import type { LaunchOptions, World } from "../contract";
import { renderPrefix } from "./prefix";

export interface NodeShare {
  nodeRank: number;
  numProcesses: number;
}

export function formWorld(
  options: LaunchOptions,
  nodes: NodeShare[],
  at: { launchId: string; attempt: number; restartCount: number; masterPort: number },
): World {
  const ranks: World["ranks"] = [];
  for (const node of [...nodes].sort((a, b) => a.nodeRank - b.nodeRank)) {
    for (let localRank = 0; localRank < node.numProcesses; localRank++) {
      const rank = ranks.length;
      const prefix = renderPrefix(options.logLinePrefixTemplate, { rank, local_rank: localRank, role_name: "default", node_rank: node.nodeRank });
      ranks.push({ rank, nodeRank: node.nodeRank, localRank, prefix });
    }
  }
  return {
    launchId: at.launchId, attempt: at.attempt, restartCount: at.restartCount, worldSize: ranks.length, numNodes: nodes.length,
    masterAddr: options.masterAddr, masterPort: at.masterPort, ranks,
  };
}

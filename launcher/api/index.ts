// The API face: what the kernel, the CLI and users reach. Everything a launch needs from outside
// the launcher goes through here or through the contract.
export * from "./run-launch";
export * from "./launch-host";
export * from "./notebook-launcher";
export * from "./error-report";
export { debugModeEnabled, DEBUG_MODE_ENV } from "./debug-probe";
export { printLaunchEvent, noticeLine, restartLine } from "./terminal-output";
export { scriptPayload } from "./script-payload";
export { Launch, NodeAgent } from "../agent";
export { SendQueue } from "../channel";
// The data plane itself, for benchmarks and for code that manages its own ranks.
export { Communicator, removeSegments, type CommSpec, type Tuning } from "../collectives";
export { resolveOwnPackage } from "../worker";
export { scanProcess, ProcessScanner, describeEvidence, watchLists, type Evidence, type WatchLists } from "../devices";
export { createWarmPool, mapCellStack, preReplayEnabled, renderPrefix, WarmPool, warmPoolLimit, WARM_WORKER_BYTES, type CellLines, type SessionSnapshot } from "../group";
export {
  state, onMainProcess, onLocalMainProcess, print, type DistributedState,
  allReduce, broadcast, allGather, reduceScatter, broadcastObject, gatherObject, waitForEveryone, CollectiveError, type NumericArray, type ReduceOp,
} from "../worker";

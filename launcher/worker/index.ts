// What runs inside a worker: the entry point (worker-main.js, spawned by the group), the session
// replay, and the worker-side API a training function calls.
export * from "./worker-api";
export { resolveOwnPackage } from "./own-package";
export {
  allReduce, broadcast, allGather, reduceScatter, broadcastObject, gatherObject, waitForEveryone, CollectiveError,
  type NumericArray, type ReduceOp,
} from "./collectives-api";

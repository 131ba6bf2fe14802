// The ranks' data plane: collectives over shared memory within a node and signed ZeroMQ TCP between
// nodes. Imports nothing of the launcher (it gets its setup from the worker).
export { rankList } from "./errors";
export { Communicator, CollectiveError, removeSegments, type CommSpec, type NumericArray, type ReduceOp, type Tuning } from "./communicator";

// The package's public face: what `import ... from "tslaunch"` gives, in a cell, a worker or a script.
export { notebookLauncher, debugLauncher, runLaunch, buildErrorReport, Launch } from "./api";
export type { LauncherOptions, LaunchHost, LaunchHooks, LaunchExtras, LaunchErrorReport } from "./api";
export { state, waitForEveryone, onMainProcess, onLocalMainProcess, print } from "./api";
export { allReduce, broadcast, allGather, reduceScatter, broadcastObject, gatherObject, CollectiveError } from "./api";
export type { DistributedState, NumericArray, ReduceOp } from "./api";
export {
  parseLaunchFlags, optionsFromObject, launchHelp, describeFailure, OPTION_SPECS,
  ReportedError, OptionError, UsageError, LaunchError, DeviceGuardError, ProbeError, RendezvousError, CompileError,
} from "./contract";
export type {
  LaunchOptions, MixedPrecision, RdzvBackend, LaunchEvent, LaunchState, RunResult, World, RankPlacement,
  WorkerInfo, WorkerState, RankFailure, WorkerSpec, CellError,
} from "./contract";

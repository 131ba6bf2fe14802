// The package's public API (what `import ... from "tslaunch"` gives).
export { Launch, describeFailure } from "./agent";
export type { LaunchEvent, RunResult, WorkerInfo, WorkerState, RankFailure, WorkerSpec } from "./agent";
export { parseLaunchFlags, optionsFromObject, launchHelp, OptionError, OPTION_SPECS } from "./options";
export type { LaunchOptions, MixedPrecision, RdzvBackend } from "./options";
export { notebookLauncher, debugLauncher, LaunchError } from "./notebook-launcher";
export type { LauncherOptions } from "./notebook-launcher";
export { state, waitForEveryone, onMainProcess, onLocalMainProcess, print } from "./worker-api";
export type { DistributedState } from "./worker-api";

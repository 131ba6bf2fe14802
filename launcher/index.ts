// The package's public API (what `import ... from "tslaunch"` gives).
export { Launch, describeFailure } from "./agent";
export type { LaunchEvent, RunResult, WorkerInfo, WorkerState, RankFailure, WorkerSpec } from "./agent";
export { parseLaunchFlags, optionsFromObject, launchHelp, OptionError, OPTION_SPECS } from "./options";
export type { LaunchOptions, MixedPrecision, RdzvBackend } from "./options";

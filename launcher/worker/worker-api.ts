// What a training function can ask of its world, as Accelerate's PartialState gives it: which
// process it is, how many there are, a barrier, main-process helpers. Outside a launch (in the
// kernel or a plain script) it describes a single process, as Accelerate does.

export interface DistributedState {
  processIndex: number;
  localProcessIndex: number;
  numProcesses: number;
  numNodes: number;
  nodeRank: number;
  isMainProcess: boolean;
  isLocalMainProcess: boolean;
  mixedPrecision: string;
  /** "cpu", or "cuda:<id>" for the accelerator this rank was given. */
  device: string;
  /** TORCHELASTIC_RESTART_COUNT: how many times the worker group was restarted. */
  restartCount: number;
}

function intEnv(name: string, fallback: number): number {
  const v = process.env[name];
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : fallback;
}

function deviceFromEnv(): string {
  if (/^(1|true|yes)$/i.test(process.env.ACCELERATE_USE_CPU ?? "")) return "cpu";
  const dev = process.env.TSLAUNCH_DEVICE;
  return dev && dev.length > 0 ? dev : "cpu";
}

/** The state, read when asked: the environment is the source of truth in a worker. */
export const state: DistributedState = {
  get processIndex() { return intEnv("RANK", 0); },
  get localProcessIndex() { return intEnv("LOCAL_RANK", 0); },
  get numProcesses() { return intEnv("WORLD_SIZE", 1); },
  get numNodes() { return intEnv("GROUP_WORLD_SIZE", 1); },
  get nodeRank() { return intEnv("GROUP_RANK", 0); },
  get isMainProcess() { return intEnv("RANK", 0) === 0; },
  get isLocalMainProcess() { return intEnv("LOCAL_RANK", 0) === 0; },
  get mixedPrecision() { return process.env.ACCELERATE_MIXED_PRECISION ?? "no"; },
  get device() { return deviceFromEnv(); },
  get restartCount() { return intEnv("TORCHELASTIC_RESTART_COUNT", 0); },
};

/** Runs `fn` on the main process only; other ranks get undefined. */
export async function onMainProcess<T>(fn: () => T | Promise<T>): Promise<T | undefined> {
  return state.isMainProcess ? await fn() : undefined;
}

/** Runs `fn` on each node's local main process only. */
export async function onLocalMainProcess<T>(fn: () => T | Promise<T>): Promise<T | undefined> {
  return state.isLocalMainProcess ? await fn() : undefined;
}

/** console.log on the main process only, so a line is not printed N times. */
export function print(...args: unknown[]): void {
  if (state.isMainProcess) console.log(...args);
}

// notebookLauncher from a plain Node script (no kernel). Like torch.multiprocessing's spawn, every
// worker re-runs the script's main module; its notebookLauncher call does not launch again but
// hands over the function, which the worker then calls with the shipped arguments.
import path from "path";
import type { LaunchEvent } from "./agent";
import type { LaunchHost } from "./launch-host";

const CALLS = Symbol.for("tslaunch.scriptCalls");
/** In a worker started for a script: which notebookLauncher call (0-based) this launch is. */
export const SCRIPT_CALL_ENV = "TSLAUNCH_SCRIPT_CALL";

/** Set in every worker's environment. */
export const IN_WORKER_ENV = "TSLAUNCH_IN_WORKER";
/** globalThis flag: true while worker-main replays the session. */
export const REPLAYING = Symbol.for("tslaunch.replaying");

let callsMade = 0;

/**
 * In a script's worker, the script's own notebookLauncher calls land here. Calls before the one
 * being launched resolve to [] (their launch already happened in the parent); the launched one
 * registers its function and never resolves, so the script stops there while the worker runs it.
 */
export function workerSideCall(fn: Function, _args: unknown[]): Promise<unknown[]> | null {
  const target = process.env[SCRIPT_CALL_ENV];
  if (target === undefined) {
    if (process.env[IN_WORKER_ENV] !== "1") return null;
    // A cell that launched in the kernel is replayed in the workers: its launch already happened.
    if ((globalThis as Record<symbol, unknown>)[REPLAYING] === true) return Promise.resolve([]);
    throw Object.assign(new Error("notebookLauncher cannot start a launch from inside a worker: launch from the notebook (or the script's main process)."), {
      name: "UsageError",
    });
  }
  const index = callsMade++;
  if (index < Number(target)) return Promise.resolve([]);
  const slots = ((globalThis as Record<symbol, Function[]>)[CALLS] ??= []);
  slots[index] = fn;
  return new Promise(() => {});
}

/**
 * The host for a script's launch. Created at the top of every notebookLauncher call, before the
 * options are checked, so the parent numbers its calls exactly as the workers do.
 */
export function scriptHost(): LaunchHost {
  const main = require.main?.filename ?? process.argv[1];
  const call = callsMade++;
  if (!main) throw new Error("notebookLauncher outside a kernel needs a main script to re-run in the workers (node script.js)");
  return {
    cwd: process.cwd(),
    replay: () => [
      { executionCount: 0, js: `require(${JSON.stringify(path.resolve(main))});`, async: false, jsLineToCellLine: [] },
    ],
    sideOutputs: () => [],
    executionCount: () => 0,
    locateFunction: () => `globalThis[Symbol.for("tslaunch.scriptCalls")][${call}]`,
    workerEnv: { [SCRIPT_CALL_ENV]: String(call) },
    execArgv: process.execArgv,
    onEvent: (event: LaunchEvent) => {
      if (event.type === "output") process[event.name].write(event.text);
      else if (event.type === "notice") process.stderr.write(`[tslaunch] ${event.text}\n`);
      else if (event.type === "restarting") process.stderr.write(`[tslaunch] ${event.reason}; restart ${event.restartCount}/${event.maxRestarts}\n`);
    },
    setActive: () => {},
  };
}

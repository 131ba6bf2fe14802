// The function API: notebookLauncher(fn, args, options) and debugLauncher(fn, args, n), Accelerate's
// notebook_launcher / debug_launcher with their contract kept and their known bugs fixed: the
// ranks' return values come back, mixed_precision reaches the workers, the prefix shows.
import { serialize } from "v8";
import { LaunchError, OptionError, optionsFromObject, type LaunchOptions, type RecordedCell } from "../contract";
import { getLaunchHost, type LaunchHost } from "./launch-host";
import { runLaunch } from "./run-launch";
import { scriptHost, workerSideCall } from "./script-host";

export type LauncherOptions = Partial<Record<keyof LaunchOptions, unknown>> & Record<string, unknown>;

const RESULT_VAR = "__tslaunch_result__";

/**
 * JavaScript that finds `fn` in a worker. A function that an earlier cell exported under its own
 * name is taken from the replayed session (its closure intact). Any other function is rebuilt from
 * its source, with the session's names in scope (tslab exports every top-level name of a cell).
 */
function functionLocator(fn: Function): { js: string; source?: string } {
  const exported = (globalThis as { __tslab__?: { exports?: Record<string, unknown> } }).__tslab__?.exports;
  // A top-level name of the session: an earlier cell's (replayed in the worker, closure intact), or
  // the calling cell's own (not replayed: it is running), which is rebuilt from its source instead.
  const byName = fn.name && exported && exported[fn.name] === fn ? `exports[${JSON.stringify(fn.name)}] ?? ` : "";
  const compiled = Function.prototype.toString.call(fn);
  let source = compiled;
  if (/\{\s*\[native code\]\s*\}\s*$/.test(source)) {
    if (byName) return { js: `exports[${JSON.stringify(fn.name)}]` };
    throw new OptionError(
      `notebookLauncher cannot send ${fn.name ? `"${fn.name}"` : "this function"} to the workers: it is native or bound. ` +
        "Pass a function declared in a cell (e.g. function train(index: number) { ... }).",
    );
  }
  // Method shorthand (`train() {}` from an object) is not an expression: make it one.
  if (!/^(async\s+)?(function\b|\(|[A-Za-z_$][\w$]*\s*=>|class\b)/.test(source)) {
    source = source.replace(/^(async\s+)?/, (m) => `${m}function `);
  }
  return { js: `${byName}(function () { with (exports) { return (${source}); } })()`, source: compiled };
}

/** The body that calls the function; its first lines are the function's source, line for line. */
function callBody(locator: { js: string; source?: string }, executionCount: number, host: LaunchHost): RecordedCell {
  const js = [
    `const __tslaunch_fn__ = ${locator.js};`,
    `exports.${RESULT_VAR} = await __tslaunch_fn__(Number(process.env.RANK), ...exports.__tslaunch_args__);`,
  ].join("\n");
  const sourceLines = locator.source ? host.cellLinesOf?.(locator.source) ?? [] : [];
  return { executionCount, js, async: true, lastExpressionVar: RESULT_VAR, jsLineToCellLine: sourceLines };
}

function serializeArgs(args: unknown[]): string {
  try {
    return serialize(args).toString("base64");
  } catch (err) {
    throw new OptionError(
      `notebookLauncher's args must be structured-cloneable (numbers, strings, arrays, plain objects, typed arrays, Maps...) ` +
        `to reach the workers: ${(err as Error).message}. Create other values inside the function instead.`,
    );
  }
}

async function launchFunction(fn: Function, args: unknown[], options: LaunchOptions, env: Record<string, string>, host: LaunchHost): Promise<unknown[]> {
  if (typeof fn !== "function") throw new OptionError(`notebookLauncher's first argument must be a function, got ${typeof fn}`);
  if (!Array.isArray(args)) throw new OptionError(`notebookLauncher's args must be an array (the function receives (processIndex, ...args)), got ${typeof args}`);
  const payload = {
    cwd: host.cwd,
    replay: host.replay(),
    sideOutputs: host.sideOutputs(),
    body: callBody(host.locateFunction ? { js: host.locateFunction(fn) } : functionLocator(fn), host.executionCount(), host),
    argsV8: serializeArgs(args),
    priorOutcomesV8: host.priorOutcomes?.(),
  };
  const result = await runLaunch(options, payload, host, { env, surface: "api" });
  // One value per rank of the world that ran (nodes may run different numbers of processes).
  return Array.from({ length: result.worldSize }, (_, i) => result.returnValues[i]);
}

/** Runs one call on its host and tells the host how it ended (a script ships that to later launches' workers). */
async function recorded(host: LaunchHost, launch: () => Promise<unknown[]>): Promise<unknown[]> {
  try {
    const values = await launch();
    host.recordOutcome?.({ ok: true, value: values });
    return values;
  } catch (err) {
    host.recordOutcome?.({ ok: false, name: (err as Error)?.name ?? "Error", message: (err as Error)?.message ?? String(err) });
    throw err;
  }
}

/**
 * Runs `fn(processIndex, ...args)` in `numProcesses` worker processes and resolves to their return
 * values, indexed by rank. Rejects with a LaunchError (one report: the first failed rank, its exit
 * code, its stack) when a rank fails after the restarts allowed.
 */
export async function notebookLauncher<A extends unknown[], R>(
  fn: (processIndex: number, ...args: A) => R | Promise<R>,
  args: A = [] as unknown as A,
  options: LauncherOptions = {},
): Promise<Awaited<R>[]> {
  const inWorker = workerSideCall(fn, args);
  if (inWorker) return inWorker as Promise<Awaited<R>[]>;
  const host = getLaunchHost() ?? scriptHost();
  return (await recorded(host, () => launchFunction(fn, args, optionsFromObject(options), {}, host))) as Awaited<R>[];
}

/**
 * Accelerate's debug_launcher: CPU only (workers see no accelerator), ACCELERATE_USE_CPU=yes,
 * no mixed precision, 2 processes by default. For tests and debugging.
 */
export async function debugLauncher<A extends unknown[], R>(
  fn: (processIndex: number, ...args: A) => R | Promise<R>,
  args: A = [] as unknown as A,
  numProcesses = 2,
): Promise<Awaited<R>[]> {
  const inWorker = workerSideCall(fn, args);
  if (inWorker) return inWorker as Promise<Awaited<R>[]>;
  const host = getLaunchHost() ?? scriptHost();
  const cpuOnly = { ACCELERATE_USE_CPU: "yes", CUDA_VISIBLE_DEVICES: "", TSLAUNCH_DEVICE: "cpu" };
  return (await recorded(host, () => launchFunction(fn, args, optionsFromObject({ numProcesses, mixedPrecision: "no" }), cpuOnly, host))) as Awaited<R>[];
}

export { LaunchError, OptionError };

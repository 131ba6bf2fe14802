// notebookLauncher from a plain Node script (no kernel). Like torch.multiprocessing's spawn, every
// worker re-runs the script's main module; its notebookLauncher call does not launch again but
// hands over the function, which the worker then calls with the shipped arguments.
//
// The script's earlier launches happened in the parent; in a worker their calls resolve to the
// very values (or reject with the very errors) the parent got, shipped with the launch: a script
// that checks each result or launches in a loop runs the same way in its workers.
import path from "path";
import { pathToFileURL } from "url";
import { serialize } from "v8";
import { ENV, PRIOR_OUTCOMES, REPLAYING, UsageError, type PriorOutcome } from "../contract";
import type { LaunchHost } from "./launch-host";
import { printLaunchEvent } from "./terminal-output";
import { createWarmPool, type WarmPool } from "../group";

const CALLS = Symbol.for("tslaunch.scriptCalls");
/** Bodies waiting for the script to reach their call (it may await before it: a launch in a loop). */
const WAITERS = Symbol.for("tslaunch.scriptCallWaiters");

let callsMade = 0;
/** In the script's process: how each of its launches ended, by call index. */
const outcomes: PriorOutcome[] = [];

/** In a worker: the call's outcome in the parent, as a promise. */
function replayOutcome(index: number): Promise<unknown[]> {
  const prior = ((globalThis as Record<symbol, PriorOutcome[] | undefined>)[PRIOR_OUTCOMES] ?? [])[index];
  if (!prior) return Promise.resolve([]);
  if (prior.ok) return Promise.resolve(prior.value);
  const err = new Error(prior.message);
  err.name = prior.name;
  return Promise.reject(err);
}

/**
 * In a script's worker, the script's own notebookLauncher calls land here. Calls before the one
 * being launched end as they did in the parent (their launch already happened there); the launched one
 * registers its function and never resolves, so the script stops there while the worker runs it.
 */
export function workerSideCall(fn: Function, _args: unknown[]): Promise<unknown[]> | null {
  const target = process.env[ENV.scriptCall];
  if (target === undefined) {
    if (process.env[ENV.inWorker] !== "1") return null;
    // A cell that launched in the kernel is replayed in the workers: its launch already happened.
    if ((globalThis as Record<symbol, unknown>)[REPLAYING] === true) return Promise.resolve([]);
    throw new UsageError("notebookLauncher cannot start a launch from inside a worker: launch from the notebook (or the script's main process).");
  }
  const index = callsMade++;
  if (index < Number(target)) return replayOutcome(index);
  const slots = ((globalThis as Record<symbol, Function[]>)[CALLS] ??= []);
  slots[index] = fn;
  ((globalThis as Record<symbol, ((fn: Function) => void)[]>)[WAITERS] ?? [])[index]?.(fn);
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
    replay: () => [{ executionCount: 0, js: loadMainScript(path.resolve(main)), async: false, jsLineToCellLine: [] }],
    sideOutputs: () => [],
    executionCount: () => 0,
    // The worker's body waits until the re-run script reaches this call: the script's top level may
    // await before it (earlier launches resolve to [] in workers, a sleep between launches).
    locateFunction: () =>
      `(globalThis[Symbol.for("tslaunch.scriptCalls")] ?? [])[${call}] ?? await new Promise((resolve) => ` +
      `((globalThis[Symbol.for("tslaunch.scriptCallWaiters")] ??= [])[${call}] = resolve))`,
    workerEnv: { [ENV.scriptCall]: String(call) },
    priorOutcomes: () => (call > 0 ? serialize(outcomes.slice(0, call)).toString("base64") : undefined),
    recordOutcome: (outcome) => {
      outcomes[call] = outcome;
    },
    execArgv: process.execArgv,
    prestarted: scriptWarmPool(),
    // A script that launches again (in a loop, say) finds warm workers; they never keep it alive.
    launchEnded: (world) => {
      const local = world?.ranks.filter((r) => r.nodeRank === 0).length ?? 0;
      if (local > 0) scriptWarmPool()?.fill(local, process.execArgv, process.cwd());
    },
    onEvent: printLaunchEvent,
    setActive: () => {},
  };
}

let warmPool: WarmPool | null | undefined;

/** The script's warm pool (unref'd: it never keeps the script alive); none when TSLAUNCH_WARM_POOL is off. */
function scriptWarmPool(): WarmPool | undefined {
  if (warmPool === undefined) {
    warmPool = createWarmPool({ unref: true }) ?? null;
  }
  return warmPool ?? undefined;
}

/**
 * The worker's way into the script, as its own process loaded it. `.mjs`/`.mts`/`.ts` are imported
 * (ES modules, or TypeScript through the loaders in execArgv such as `tslaunch/register`), falling
 * back to require() where no loader takes them (a CommonJS hook like ts-node's). Other files are
 * require()d, falling back to import() for an ES module (`"type": "module"`, top-level await).
 * The import is not awaited: the script's top level awaits the launched call, which never resolves
 * in a worker (the body takes the function over); an error it throws still fails the rank.
 */
function loadMainScript(file: string): string {
  const req = `require(${JSON.stringify(file)})`;
  const imp = `__tslab__.importModule(${JSON.stringify(pathToFileURL(file).href)})`;
  const rethrow = "setImmediate(() => { throw e; })";
  if (/\.(mjs|mts|ts)$/.test(file)) {
    return `${imp}.catch((e) => { if (e?.code !== "ERR_UNKNOWN_FILE_EXTENSION") return ${rethrow}; try { ${req}; } catch (e) { ${rethrow}; } });`;
  }
  return (
    `try { ${req}; } catch (err) {\n` +
    `  if (err?.code !== "ERR_REQUIRE_ESM" && err?.code !== "ERR_REQUIRE_ASYNC_MODULE") throw err;\n` +
    `  ${imp}.catch((e) => ${rethrow});\n}`
  );
}

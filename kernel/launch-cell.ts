// A `%%launch` cell, step by step: parse the flags, compile the body once in the kernel, start the
// agent, stream every rank's output into the cell, end with one error report if a rank failed.
import { Launch, type LaunchEvent } from "../launcher/agent";
import { launchHelp, OptionError, parseLaunchFlags, type LaunchOptions } from "../launcher/options";
import type { ActiveLaunchHandle } from "../launcher/launch-host";
import { buildErrorReport } from "../launcher/error-report";
import { resolveNumProcesses } from "../launcher/num-processes";
import { debugModeEnabled, runDebugProbe } from "../launcher/debug-probe";
import { LaunchView } from "./launch-view";
import { CompileError, type CellError, type Session } from "./session";
import type { CellMagic } from "./magics";
import type { CellOutput } from "./kernel";

export type ActiveLaunch = ActiveLaunchHandle;

export interface LaunchCellContext {
  session: Session;
  executionCount: number;
  output: CellOutput;
  setActive(launch: ActiveLaunch | null): void;
  /** The device guard: throws when the session touched an accelerator. */
  checkBeforeLaunch(): void;
}

function usageError(message: string): CellError {
  return { ename: "UsageError", evalue: message, traceback: [`UsageError: ${message}`] };
}


export async function runLaunchCell(magic: CellMagic, ctx: LaunchCellContext): Promise<{ ok: true } | { ok: false; error: CellError }> {
  const { output } = ctx;
  let options: LaunchOptions;
  let numProcesses: number;
  try {
    const parsed = parseLaunchFlags(magic.line);
    if (parsed.help) {
      output.stream("stdout", launchHelp() + "\n");
      return { ok: true };
    }
    options = parsed.options;
    numProcesses = resolveNumProcesses(options);
  } catch (err) {
    if (err instanceof OptionError) return { ok: false, error: usageError(err.message) };
    throw err;
  }

  let body;
  try {
    body = ctx.session.compile(magic.body, ctx.executionCount, 2);
  } catch (err) {
    if (err instanceof CompileError) {
      const lines = err.message.split("\n");
      return { ok: false, error: { ename: "CompileError", evalue: lines[0], traceback: [`CompileError: the %%launch body does not compile; nothing was started.`, ...lines] } };
    }
    throw err;
  }

  const payload = { cwd: ctx.session.cwd, replay: ctx.session.recorded, body, sideOutputs: [...ctx.session.sideOutputs].map(([path, data]) => ({ path, data })) };
  try {
    ctx.checkBeforeLaunch();
    if (debugModeEnabled()) {
      const ms = await runDebugProbe({ options, numProcesses, payload }, (event) => showLaunchEvent(event, output), ctx.setActive);
      output.stream("stderr", probePassedNotice(ms, numProcesses * options.numNodes));
    }
  } catch (err) {
    const reported = reportedError(err);
    if (reported) return { ok: false, error: reported };
    throw err;
  }

  const view = new LaunchView(options, numProcesses, (content, update) => output.display(content, update));
  view.open();
  const launch = new Launch({ options, numProcesses, payload }, (event) => {
    showLaunchEvent(event, output);
    view.onEvent(event);
  });
  ctx.setActive(launch);
  try {
    const result = await launch.run();
    output.flush();
    if (result.outcome === "succeeded") return { ok: true };
    return { ok: false, error: buildErrorReport(result, result.worldSize) };
  } catch (err) {
    const reported = reportedError(err);
    view.abort(reported?.evalue ?? String(err));
    if (reported) return { ok: false, error: reported };
    throw err;
  } finally {
    ctx.setActive(null);
  }
}

export function probePassedNotice(ms: number, worldSize: number): string {
  return `[tslaunch] ACCELERATE_DEBUG_MODE: the environment check passed in ${Math.round(ms)} ms (${worldSize} rank${worldSize > 1 ? "s" : ""} replayed the session, met at a barrier, and each sees only its own device); starting the launch.\n`;
}

/** Errors that carry the report a user should read (guard, probe, rendezvous, options). */
function reportedError(err: unknown): CellError | null {
  const e = err as { name?: string; message?: string; traceback?: unknown };
  if (err instanceof Error && Array.isArray(e.traceback)) return { ename: err.name, evalue: err.message, traceback: (e.traceback as unknown[]).map(String) };
  return null;
}

/** How a launch event shows in the cell: rank output as streams, worker displays, restarts. */
export function showLaunchEvent(event: LaunchEvent, output: CellOutput): void {
  switch (event.type) {
    case "output":
      output.stream(event.name, event.text);
      break;
    case "display":
      output.display({ ...event.display, metadata: { ...event.display.metadata, tslaunch: { rank: event.rank } } }, event.update);
      break;
    case "notice":
      output.stream("stderr", `[tslaunch] ${event.text}\n`);
      break;
    case "restarting":
      output.stream("stderr", `[tslaunch] ${event.reason}; restart ${event.restartCount}/${event.maxRestarts}\n`);
      break;
    default:
      break;
  }
}

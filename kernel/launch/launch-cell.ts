// A `%%launch` cell: parse the flags, compile the body once in the kernel, then the one launch path
// every launch takes (launcher/api/run-launch.ts: guard, probe, view, launch, report), with the
// kernel as its host (kernel-launch-host.ts).
import { LaunchError, launchHelp, traceMark, OptionError, parseLaunchFlags, ReportedError, type CellError, type LaunchOptions } from "../../launcher/contract";
import { runLaunch, type LaunchHooks } from "../../launcher/api";
import { CompileError, type Session } from "../cells/session";
import type { CellMagic } from "../cells/magics";
import type { CellOutput } from "../jupyter/cell-output";

export interface LaunchCellContext {
  session: Session;
  executionCount: number;
  output: CellOutput;
  host: LaunchHooks;
}

export type LaunchCellOutcome = { ok: true } | { ok: false; error: CellError };

/** Flag problems are UsageErrors in a cell, as ipykernel names a magic's bad arguments. */
function usageError(message: string): CellError {
  return { ename: "UsageError", evalue: message, traceback: [`UsageError: ${message}`] };
}

export async function runLaunchCell(magic: CellMagic, ctx: LaunchCellContext): Promise<LaunchCellOutcome> {
  traceMark("kernel: %%launch cell");
  let options: LaunchOptions;
  try {
    const parsed = parseLaunchFlags(magic.line);
    if (parsed.help) {
      ctx.output.stream("stdout", launchHelp() + "\n");
      return { ok: true };
    }
    options = parsed.options;
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

  traceMark("kernel: body compiled");
  const payload = { cwd: ctx.session.cwd, replay: ctx.session.recorded, body, sideOutputs: [...ctx.session.sideOutputs].map(([path, data]) => ({ path, data })) };
  try {
    await runLaunch(options, payload, ctx.host, { surface: "magic" });
    traceMark("kernel: launch returned");
    ctx.output.flush();
    return { ok: true };
  } catch (err) {
    ctx.output.flush();
    if (err instanceof OptionError && !(err instanceof LaunchError)) return { ok: false, error: usageError(err.message) };
    const reported = ReportedError.toCellError(err);
    if (reported) return { ok: false, error: reported };
    throw err;
  }
}

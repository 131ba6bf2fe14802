// What a cell does, whatever the protocol around it: an ordinary cell runs in tslab's executor
// (cells/session.ts), a `%%launch` cell goes to launch/launch-cell.ts; afterwards the device guard
// looks at the kernel process. Returns the outcome; kernel.ts turns it into iopub and the reply.
import { inspect } from "util";
import type { LaunchHooks } from "../launcher/api";
import { offeredOutput, type CellError } from "../launcher/contract";
import { parseMagic } from "./cells/magics";
import type { Session } from "./cells/session";
import type { CellOutput } from "./jupyter/cell-output";
import type { MimeBundle } from "./jupyter/wire";
import type { DeviceGuard } from "./launch/device-guard";
import { runLaunchCell } from "./launch/launch-cell";

export interface CellContext {
  session: Session;
  guard: DeviceGuard;
  launchHost: LaunchHooks;
  output: CellOutput;
  /** prompt()/input() answers the cell got (filled while it runs): recorded with it for replay. */
  stdinAnswers: readonly string[];
}

export interface CellOutcome {
  error: CellError | null;
  /** The trailing expression's value, when the cell has one. */
  result?: MimeBundle;
}

export async function runCell(code: string, executionCount: number, ctx: CellContext): Promise<CellOutcome> {
  // A tsconfig.json the cells could not fully use is said once, above the first cell's output.
  for (const note of ctx.session.takeSetupNotes()) ctx.output.stream("stderr", note + "\n");
  const outcome = await runByKind(code, executionCount, ctx);
  // The device guard looks at the kernel process after every cell, to name the cell that first
  // touched an accelerator.
  const warning = ctx.guard.afterCell(executionCount, code);
  if (warning) ctx.output.stream("stderr", warning + "\n");
  return outcome;
}

async function runByKind(code: string, executionCount: number, ctx: CellContext): Promise<CellOutcome> {
  const magic = parseMagic(code);
  if (magic?.name === "launch") {
    const launched = await runLaunchCell(magic, { session: ctx.session, executionCount, output: ctx.output, host: ctx.launchHost });
    return { error: launched.ok ? null : launched.error };
  }
  if (magic) {
    return {
      error: {
        ename: "UsageError",
        evalue: `unknown cell magic %%${magic.name}`,
        traceback: [`UsageError: unknown cell magic %%${magic.name}. Available: %%launch (see %%launch --help).`],
      },
    };
  }
  const outcome = await ctx.session.execute(code, executionCount, ctx.stdinAnswers);
  ctx.output.flush();
  if (!outcome.ok) return { error: outcome.error };
  if (!outcome.hasResult) return { error: null };
  // An object with [Symbol.for("Jupyter.display")]() shows the bundle it offers (Deno's protocol).
  try {
    const offered = await offeredOutput(outcome.result);
    if (offered) return { error: null, result: offered.data };
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    return { error: { ename: e.name, evalue: e.message, traceback: [`${e.name}: ${e.message}`] } };
  }
  const text = typeof outcome.result === "string" ? outcome.result : inspect(outcome.result, { colors: false });
  return { error: null, result: { "text/plain": text } };
}

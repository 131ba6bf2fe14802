// `tslaunch execute`: run a notebook top to bottom in a fresh kernel, showing it in the terminal
// as it goes, and stop at the first failing cell, as `jupyter nbconvert --execute` does.
import { mkdirSync, readFileSync, writeFileSync } from "fs";
import { dirname } from "path";
import { KernelClient } from "./kernel-client";
import { startKernelProcess, KernelProcess } from "./kernel-process";
import { LAUNCH_END_MIME, LAUNCH_VIEW_MIME } from "../launch/launch-view";
import { DisplayDataOutput, joinText, NbOutput, OutputArea, OutputChange, renderOutput } from "./render-output";

export interface ExecuteNotebookOptions {
  notebookPath: string;
  /** Where the executed notebook is written (also when a cell failed); not written if absent. */
  outputPath?: string;
  /** A kernelspec argv with `{connection_file}`. */
  kernelArgv: string[];
  cwd?: string;
  /** Extra environment for the kernel, merged over this process's environment. */
  env?: Record<string, string | undefined>;
  /** A cell running longer is interrupted and counts as failed. Default: no limit. */
  timeoutPerCellMs?: number;
  /** How long the kernel may take to answer at all. Default 60 s. */
  startupTimeoutMs?: number;
  /** Receives the transcript in pieces, to be written as they are (no newline is added). */
  print: (text: string) => void;
  /** Drop ANSI colour codes from what is printed (e.g. when stdout is not a terminal). */
  stripAnsi?: boolean;
  /**
   * Aborting interrupts the running cell and ends the run (ok: false), kernel disposed. The kernel
   * runs in its own session and does not get the terminal's Ctrl-C: a CLI should abort on SIGINT.
   */
  signal?: AbortSignal;
}

export interface ExecuteNotebookResult {
  ok: boolean;
  /** Index into the notebook's `cells` (0-based, markdown cells counted) of the cell that failed. */
  failedCell?: number;
  /** Why the run failed, when it was not an error raised by the cell's code (timeout, kernel died, ...). */
  error?: string;
}

interface NotebookCell {
  cell_type: string;
  source: string | string[];
  outputs?: NbOutput[];
  execution_count?: number | null;
  [key: string]: unknown;
}

interface Notebook {
  nbformat: number;
  cells: NotebookCell[];
  [key: string]: unknown;
}

/** After a timeout's interrupt, how long the cell gets to wind down before we give up on it. */
const INTERRUPT_GRACE_MS = 5000;

export async function executeNotebook(options: ExecuteNotebookOptions): Promise<ExecuteNotebookResult> {
  const notebook = readNotebook(options.notebookPath);
  const out = new Transcript(options.print);
  let kernel: KernelProcess | undefined;
  let client: KernelClient | undefined;
  let result: ExecuteNotebookResult = { ok: true };
  try {
    kernel = await startKernelProcess({ argv: options.kernelArgv, cwd: options.cwd, env: options.env });
    client = KernelClient.forProcess(kernel);
    const ready = await settleFirst(client.waitForReady(options.startupTimeoutMs ?? 60_000), undefined, options.signal);
    if (ready === "aborted") throw new Error("aborted while the kernel was starting");
    result = await runCells(notebook, client, out, options);
  } catch (err) {
    result = { ok: false, error: err instanceof Error ? err.message : String(err) };
  } finally {
    try {
      if (client && kernel && !kernel.hasExited()) await client.shutdown({ timeoutMs: 3000 });
    } catch {
      /* dispose() below kills it regardless */
    }
    client?.close();
    await kernel?.dispose();
  }
  if (result.error) out.line(`\n${result.error}`);
  if (options.outputPath) writeNotebook(options.outputPath, notebook);
  return result;
}

async function runCells(
  notebook: Notebook,
  client: KernelClient,
  out: Transcript,
  options: ExecuteNotebookOptions,
): Promise<ExecuteNotebookResult> {
  // update_display_data may target a display shown by an earlier cell.
  const displays = new Map<string, DisplayDataOutput[]>();
  let promptNumber = 0;
  for (const [index, cell] of notebook.cells.entries()) {
    if (cell.cell_type !== "code") continue;
    const source = joinText(cell.source);
    cell.outputs = [];
    cell.execution_count = null;
    // nbclient skips blank cells too; the kernel would not count them either.
    if (source.trim() === "") continue;

    promptNumber++;
    out.line(`${promptNumber > 1 ? "\n" : ""}In [${promptNumber}]:`);
    out.line(source);
    out.line("");

    const area = new OutputArea(displays);
    cell.outputs = area.outputs;
    const execution = client.execute(source, {
      outputArea: area,
      onIOPub: (_msg, change) => out.change(change, options.stripAnsi),
    });
    let outcome: Awaited<typeof execution> | "timeout" | "aborted";
    try {
      outcome = await settleFirst(execution, options.timeoutPerCellMs, options.signal);
      if (outcome === "timeout" || outcome === "aborted") {
        await client.interrupt();
        // Let the interrupt's traceback land in the outputs if the kernel manages in time.
        await settleFirst(execution.catch(() => undefined), INTERRUPT_GRACE_MS);
        const seconds = (options.timeoutPerCellMs ?? 0) / 1000;
        const why = outcome === "timeout" ? `timed out after ${seconds} s` : "was aborted";
        return { ok: false, failedCell: index, error: `cell ${index} (In [${promptNumber}]) ${why}` };
      }
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      return { ok: false, failedCell: index, error: `cell ${index} (In [${promptNumber}]) did not finish: ${message}` };
    }
    out.flushHeld(options.stripAnsi);
    const reply = outcome.reply.content;
    cell.execution_count = typeof reply.execution_count === "number" ? reply.execution_count : null;
    if (reply.status !== "ok") return { ok: false, failedCell: index };
  }
  return { ok: true };
}

/** The promise's value, or "timeout" after `ms` (none if 0/undefined), or "aborted" on `signal`. */
function settleFirst<T>(promise: Promise<T>, ms?: number, signal?: AbortSignal): Promise<T | "timeout" | "aborted"> {
  if (signal?.aborted) return Promise.resolve("aborted");
  let timer: NodeJS.Timeout | undefined;
  let onAbort = () => {};
  const contenders: Promise<T | "timeout" | "aborted">[] = [promise];
  if (ms && ms > 0) contenders.push(new Promise((resolve) => (timer = setTimeout(() => resolve("timeout"), ms))));
  if (signal) contenders.push(new Promise((resolve) => signal.addEventListener("abort", (onAbort = () => resolve("aborted")))));
  return Promise.race(contenders).finally(() => {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  });
}

/** Writes the run for a person: keeps track of the line so prompts and outputs start on their own. */
class Transcript {
  private atLineStart = true;

  constructor(private readonly print: (text: string) => void) {}

  write(text: string): void {
    if (text === "") return;
    this.print(text);
    this.atLineStart = text.endsWith("\n");
  }

  line(text: string): void {
    if (!this.atLineStart) this.write("\n");
    this.write(text.endsWith("\n") ? text : text + "\n");
  }

  /** Live displays (a launch's view) print once, in their final state, when the cell ends. */
  private held: NbOutput[] = [];

  flushHeld(stripAnsi?: boolean): void {
    for (const output of this.held) this.line(renderOutput(output, { stripAnsi }));
    this.held = [];
  }

  change(change: OutputChange, stripAnsi?: boolean): void {
    // The end note repeats the view's final state for clients that drop updates; this one does not.
    if (change.kind === "added" && change.output.output_type === "display_data" && LAUNCH_END_MIME in change.output.data) return;
    if (change.kind === "added" && change.output.output_type === "display_data" && LAUNCH_VIEW_MIME in change.output.data) {
      this.held.push(change.output);
      return;
    }
    if (change.kind === "appended") {
      this.write(renderOutput({ output_type: "stream", name: change.output.name, text: change.text }, { stripAnsi }));
    } else if (change.kind === "added") {
      const text = renderOutput(change.output, { stripAnsi });
      if (change.output.output_type === "stream") this.write(text);
      else if (change.output.output_type === "execute_result") {
        this.line(`Out[${change.output.execution_count ?? " "}]: ${text}`);
      } else this.line(text);
    }
    // "updated" and "cleared" change what the notebook file will show; a scrolling terminal
    // cannot take back what it printed, and reprinting every progress-bar update would flood it.
  }
}

function readNotebook(path: string): Notebook {
  const notebook = JSON.parse(readFileSync(path, "utf8"));
  if (notebook?.nbformat !== 4 || !Array.isArray(notebook.cells)) {
    throw new Error(`${path}: not an nbformat 4 notebook`);
  }
  return notebook;
}

function writeNotebook(path: string, notebook: Notebook): void {
  mkdirSync(dirname(path), { recursive: true });
  // Indent 1, like nbformat, to keep diffs against Jupyter-saved notebooks small.
  writeFileSync(path, JSON.stringify(notebook, null, 1) + "\n");
}

// The notebook session: tslab's own converter and executor run ordinary cells; this module wraps
// them to record what each successful cell compiled to (for replay in workers) and to turn tslab's
// console calls (diagnostics, errors, the trailing expression) into Jupyter outputs.
import { inspect } from "util";
import type * as vm from "vm";
import { createConverter, type Converter, type ConvertResult } from "tslab/dist/converter";
import { createExecutor, type Executor } from "tslab/dist/executor";
import { programOfLastConverter, setCellCompilerOptions } from "./cell-compiler-options";
import { alignLines } from "./line-map";
import { compilerOptionProblems, readNotebookTsconfig } from "./notebook-tsconfig";
import { withLocalModules } from "./local-modules";
import { runBreakable } from "../interrupt-signal";
import { cellFileName, CompileError as ReportedCompileError, NOTEBOOK_GLOBALS_DTS, ReportedError, type CellError, type RecordedCell } from "../../launcher/contract";
import { mapCellStack, type CellLines } from "../../launcher/api";

/** A cell source's first line equal to this keeps the cell out of the replay in workers. */
export const NO_REPLAY_MARKER = "//%tslaunch:no-replay";

export type CellOutcome =
  | { ok: true; result?: unknown; hasResult: boolean }
  | { ok: false; error: CellError };

export interface Diagnostic {
  line: number;
  character: number;
  message: string;
  /** A local module's path (relative to the notebook) when the error is there, not in the cell. */
  file?: string;
}

/** "line 2, column 5: …" in the cell (shifted by `firstLine - 1`), or "lib/x.ts line 2, column 5: …" in a module. */
function whereAndWhat(d: Diagnostic, firstLine = 1): string {
  return d.file ? `${d.file} line ${d.line}, column ${d.character}: ${d.message}` : `line ${d.line + firstLine - 1}, column ${d.character}: ${d.message}`;
}

/** A cell or %%launch body that does not type-check: its diagnostics in cell lines. */
export class CompileError extends ReportedCompileError {
  constructor(readonly diagnostics: Diagnostic[], readonly firstLine: number) {
    super(diagnostics.map((d) => whereAndWhat(d, firstLine)).join("\n"));
  }
}

/** Why tslab's executor called console.error: a diagnostic or an exception. */
type ErrorSink = { diagnostics: Diagnostic[]; exception?: unknown };

export class Session {
  private readonly converter: Converter;
  private readonly executor: Executor;
  /** Declarations of every successful cell so far (tslab's "prevDecl"). */
  private declarations = "";
  private lastConverted: ConvertResult | null = null;
  private sink: ErrorSink = { diagnostics: [] };
  private lastExpression: { value: unknown } | null = null;
  /** JavaScript of earlier successful cells, in execution order. */
  readonly recorded: RecordedCell[] = [];
  readonly sideOutputs = new Map<string, string>();
  /** Every cell that ran (replayed or not), by its file name in stacks: a traceback names cell lines. */
  private readonly cellLines = new Map<string, CellLines>();

  /** What the notebook's tsconfig.json could not give the cells: said once, in the first cell. */
  private setupNotes: string[];

  constructor(readonly cwd: string) {
    const tsconfig = readNotebookTsconfig(cwd);
    this.setupNotes = tsconfig.problems;
    setCellCompilerOptions(tsconfig.options);
    const converter = createConverter({ isJS: false, isBrowser: false });
    const program = programOfLastConverter();
    this.converter = withLocalModules(converter, cwd, tsconfig.options, program);
    // Problems with the options themselves (a `types` entry that is not installed, say) belong to no
    // file, and tslab drops diagnostics without a file: they would never be seen.
    this.setupNotes.push(...compilerOptionProblems(program()?.getProgram(), tsconfig.file));
    // display(), prompt() and input() are globals of every cell (kernel/kernel.ts, worker-main.ts).
    this.converter.addModule("__tslaunch_globals__", NOTEBOOK_GLOBALS_DTS);
    const recordingConverter: Converter = {
      ...this.converter,
      convert: (prevDecl, src) => {
        const result = this.converter.convert(prevDecl, src);
        this.lastConverted = result;
        return result;
      },
    };
    let browser: Converter | undefined;
    this.executor = createExecutor(
      cwd,
      {
        node: recordingConverter,
        get browser() {
          return (browser ??= createConverter({ isJS: false, isBrowser: true }));
        },
        close: () => {
          this.converter.close();
          browser?.close();
        },
      },
      {
        // tslab logs a cell's trailing expression with console.log.
        log: (value: unknown) => {
          this.lastExpression = { value };
        },
        // ... and reports diagnostics ("%s%d:%d - %s") and exceptions with console.error.
        error: (first: unknown, ...rest: unknown[]) => {
          if (first === "%s%d:%d - %s") {
            const file = String(rest[0]).trim();
            this.sink.diagnostics.push({ line: rest[1] as number, character: rest[2] as number, message: String(rest[3]), ...(file ? { file } : {}) });
          } else {
            this.sink.exception = first;
          }
        },
      },
    );
  }

  /**
   * Type-checks and compiles `code` as a cell would be, and throws the result away: nothing runs and
   * the session's declarations stay as they are. The kernel does this with a few typical cells while
   * the notebook is quiet after start, so that TypeScript's checker and emitter are compiled by V8
   * before the first real cell (which otherwise takes ~50 ms instead of ~10-20).
   */
  warmUp(code: string): void {
    this.converter.convert(this.declarations, code);
    warmedUp++;
  }

  /** Problems with the notebook's TypeScript setup, the first time they are asked for; then none. */
  takeSetupNotes(): string[] {
    const notes = this.setupNotes;
    this.setupNotes = [];
    return notes;
  }

  /** Runs an ordinary cell through tslab's executor. */
  async execute(code: string, executionCount: number, stdinAnswers: readonly string[] = []): Promise<CellOutcome> {
    this.sink = { diagnostics: [] };
    this.lastExpression = null;
    this.lastConverted = null;
    this.runningCode = code;
    this.interruptRequested = false;
    // tslab's executor compiles and runs the cell synchronously inside execute(), before its first
    // await: only that one run gets the cell's file name.
    const restore = nameNextRun(cellFileName(executionCount, false));
    const running = this.executor.execute(code);
    restore();
    // The cell's line map, now: a failing cell needs it for its own traceback, later cells for frames in it.
    const compiled = this.lastConverted as ConvertResult | null;
    const jsLineToCellLine = compiled?.output ? alignLines(compiled.output, code) : [];
    if (compiled?.output) this.cellLines.set(cellFileName(executionCount, false), { executionCount, jsLineToCellLine });
    const ok = await running.finally(() => (this.runningCode = null));
    if (!ok) return { ok: false, error: this.interruptRequested || isInterruption(this.sink.exception) ? KEYBOARD_INTERRUPT : this.errorFromSink() };
    // A `/** @module name */` cell is registered even when it does not type-check (tslab), and
    // tslab's executor then reports success: its errors fail the cell, so they are seen.
    if (this.sink.diagnostics.length > 0) return { ok: false, error: this.errorFromSink() };
    const converted = this.lastConverted as ConvertResult | null;
    if (converted) {
      if (converted.declOutput !== undefined) this.declarations = converted.declOutput;
      for (const side of converted.sideOutputs ?? []) this.sideOutputs.set(side.path, side.data);
      if (converted.output && !code.startsWith(NO_REPLAY_MARKER)) {
        this.recorded.push({
          executionCount,
          js: converted.output,
          async: Boolean(converted.hasToplevelAwait),
          lastExpressionVar: converted.lastExpressionVar,
          jsLineToCellLine,
          ...(stdinAnswers.length > 0 ? { stdinAnswers: [...stdinAnswers] } : {}),
        });
      }
    }
    const expr = this.lastExpression as { value: unknown } | null;
    return { ok: true, hasResult: expr !== null, result: expr?.value };
  }

  /**
   * Type-checks and transpiles a launch body against the session's declarations, without running
   * it. `firstLine` is the body's first line in the cell (2 under a `%%launch` line).
   */
  compile(body: string, executionCount: number, firstLine: number): RecordedCell {
    // A launch cell run again with nothing run in between compiles to the same code: reuse it
    // (type-checking even `1` costs ~5 ms). Not when it imports local modules, which may have changed on disk.
    const cached = this.lastCompiled;
    if (cached && cached.body === body && cached.declarations === this.declarations && cached.firstLine === firstLine) {
      return { ...cached.cell, executionCount };
    }
    const converted = this.converter.convert(this.declarations, body);
    if (converted.diagnostics.length > 0) {
      throw new CompileError(
        converted.diagnostics.map((d) => ({ line: d.start.line + 1, character: d.start.character + 1, message: d.messageText, ...(d.fileName ? { file: d.fileName } : {}) })),
        firstLine,
      );
    }
    for (const side of converted.sideOutputs ?? []) this.sideOutputs.set(side.path, side.data);
    const js = converted.output ?? "";
    const cell: RecordedCell = {
      executionCount,
      js,
      async: Boolean(converted.hasToplevelAwait),
      lastExpressionVar: converted.lastExpressionVar,
      jsLineToCellLine: alignLines(js, body, firstLine),
    };
    this.lastCompiled = (converted.sideOutputs ?? []).length === 0 ? { body, declarations: this.declarations, firstLine, cell } : null;
    return cell;
  }

  /** The last launch body compiled (see compile()). */
  private lastCompiled: { body: string; declarations: string; firstLine: number; cell: RecordedCell } | null = null;

  /**
   * For a function defined in the running cell: the cell line of each line of its compiled source
   * (so a worker's stack can name the cell's lines), or null when it is not from this cell.
   */
  cellLinesOf(compiledSource: string): number[] | null {
    const converted = this.lastConverted as ConvertResult | null;
    const output = converted?.output;
    if (!output || this.runningCode === null) return null;
    const at = output.indexOf(compiledSource);
    if (at < 0) return null;
    const first = output.slice(0, at).split("\n").length - 1;
    const map = alignLines(output, this.runningCode);
    return compiledSource.split("\n").map((_, i) => map[first + i] ?? 0);
  }

  /** The source of the cell being executed (null between cells). */
  private runningCode: string | null = null;

  complete(code: string, cursor: number) {
    return this.executor.complete(code, cursor);
  }

  inspect(code: string, cursor: number) {
    return this.executor.inspect(code, cursor);
  }

  /** Set by interrupt() while a cell runs: however the cell then fails, it was interrupted. */
  private interruptRequested = false;

  interrupt(): void {
    if (this.runningCode !== null) this.interruptRequested = true;
    this.executor.interrupt();
  }

  close(): void {
    this.executor.close();
  }

  private errorFromSink(): CellError {
    const { diagnostics, exception } = this.sink;
    if (diagnostics.length > 0) {
      const lines = diagnostics.map((d) => whereAndWhat(d));
      return { ename: "CompileError", evalue: lines[0], traceback: lines };
    }
    // A failed launch (LaunchError) carries its whole report: show it, not the kernel-side stack.
    const reported = ReportedError.toCellError(exception);
    if (reported) return reported;
    if (exception instanceof Error) {
      // Frames name cell lines ("cell [3], line 2"); the kernel's and tslab's own frames are dropped.
      const stack = mapCellStack(exception.stack ?? String(exception), (file) => this.cellLines.get(file));
      return { ename: exception.name || "Error", evalue: exception.message, traceback: stack.split("\n") };
    }
    return { ename: "Error", evalue: inspect(exception), traceback: [`Uncaught ${inspect(exception)}`] };
  }
}

/**
 * Makes the next vm.runInThisContext() call (tslab's executor running a cell) name its code
 * `fileName`, so that stack frames can be told apart by cell and mapped to cell lines. tslab gives
 * no option for it; the patch is undone by the returned function, right after that call.
 */
function nameNextRun(fileName: string): () => void {
  // The module object itself (what tslab's require("vm") gets), not an import namespace copy.
  const vmModule = require("vm") as { runInThisContext: typeof vm.runInThisContext };
  const original = vmModule.runInThisContext;
  const named = (code: string, options?: vm.RunningScriptOptions | string) => {
    vmModule.runInThisContext = original;
    // tslab puts its wrapper and the cell's first line on one line: no line offset. displayErrors off:
    // V8 would otherwise put the generated source line at the top of the stack.
    const given = typeof options === "object" ? options : {};
    return runBreakable(() => original(code, { ...given, filename: fileName, displayErrors: false }));
  };
  vmModule.runInThisContext = named as typeof vm.runInThisContext;
  return () => void (vmModule.runInThisContext = original);
}

let warmedUp = 0;

/** How many cells Session.warmUp compiled in this process (for tests and the bench). */
export function warmUpCount(): number {
  return warmedUp;
}

/** What an interrupted cell shows: the same clean report as an interrupted `%%launch`, no stack. */
export const KEYBOARD_INTERRUPT: CellError = {
  ename: "KeyboardInterrupt",
  evalue: "the cell was interrupted",
  traceback: ["KeyboardInterrupt: the cell was interrupted"],
};

/** tslab's executor rejects an interrupted await with this error; Node's vm says so for a busy loop. */
function isInterruption(exception: unknown): boolean {
  return exception instanceof Error && (exception.message === "Interrupted asynchronously" || /^Script execution was interrupted by `SIGINT`/.test(exception.message));
}

// Every error a person reads comes through one base: ReportedError carries what Jupyter's `error`
// message carries (ename, evalue, traceback). The kernel, the function API and the CLI show it as
// it is; nothing recognises errors by their shape. Subclasses only name the kind of problem.

/** An error as a Jupyter frontend shows it (iopub `error`, `execute_reply` with status "error"). */
export interface CellError {
  ename: string;
  evalue: string;
  traceback: string[];
}

// A brand rather than `instanceof` alone: a cell may load a second copy of this package (a
// different folder's node_modules), whose classes are not ours.
const BRAND = Symbol.for("tslaunch.reportedError");

export class ReportedError extends Error implements CellError {
  override name = "ReportedError";
  /** Set by subclasses whose report is longer than the message (a failed launch's report). */
  protected readonly lines?: string[];

  constructor(message: string, lines?: string[]) {
    super(message);
    this.lines = lines;
    (this as unknown as Record<symbol, boolean>)[BRAND] = true;
  }

  get ename(): string {
    return this.name;
  }

  get evalue(): string {
    return this.message;
  }

  /** What the frontend shows: the report alone; the stack inside tslaunch helps no one. */
  get traceback(): string[] {
    return this.lines ?? [`${this.name}: ${this.message}`];
  }

  toCellError(): CellError {
    return { ename: this.ename, evalue: this.evalue, traceback: this.traceback };
  }

  static is(err: unknown): err is ReportedError {
    return typeof err === "object" && err !== null && (err as Record<symbol, unknown>)[BRAND] === true;
  }

  /** The CellError of a ReportedError, or null for anything else (a bug: shown with its stack). */
  static toCellError(err: unknown): CellError | null {
    if (!ReportedError.is(err)) return null;
    const e = err as unknown as CellError;
    return { ename: e.ename, evalue: e.evalue, traceback: [...e.traceback].map(String) };
  }
}

/** A bad flag, option or argument: says what was wrong, what is accepted, and what to do. */
export class OptionError extends ReportedError {
  override name = "OptionError";
}

/** Something the user asked for that tslaunch does not do (e.g. launching from inside a worker). */
export class UsageError extends ReportedError {
  override name = "UsageError";
}

/** The device guard refused the launch: the session touched an accelerator in the kernel. */
export class DeviceGuardError extends ReportedError {
  override name = "DeviceGuardError";
}

/** The ACCELERATE_DEBUG_MODE probe found a problem before the real launch. */
export class ProbeError extends ReportedError {
  override name = "ProbeError";
}

/** The nodes could not meet: store address, secret, join timeout. */
export class RendezvousError extends ReportedError {
  override name = "RendezvousError";
}

/** The body did not type-check or transpile; nothing was started. */
export class CompileError extends ReportedError {
  override name = "CompileError";
}

/** The launch's own files or sockets could not be set up (a full disk, an unusable TMPDIR); nothing was started. */
export class LaunchSetupError extends ReportedError {
  override name = "LaunchSetupError";

  /** Names the step, the folder and the cause, and says what to do for the causes we know. */
  static from(err: unknown, step: string, folder: string): LaunchSetupError {
    const e = err as NodeJS.ErrnoException;
    const cause = e?.message ?? String(err);
    const hint =
      e?.code === "ENOSPC" ? `The disk holding ${folder} is full: free some space there and run it again, or set TMPDIR to a folder on another disk (then restart the kernel or the script).`
      : e?.code === "EACCES" || e?.code === "EPERM" || e?.code === "EROFS" ? `${folder} is not writable: set TMPDIR to a folder you can write to (then restart the kernel or the script).`
      : e?.code === "ENOENT" ? `${folder} does not exist: create it, or set TMPDIR to a folder that exists (then restart the kernel or the script).`
      : e?.code === "EMFILE" || e?.code === "ENFILE" ? `Too many open files: close some (or raise ulimit -n) and run it again.`
      : `Check ${folder} (TMPDIR) and run it again.`;
    return new LaunchSetupError(`cannot ${step} in ${folder}: ${cause}. Nothing was started. ${hint}`);
  }
}

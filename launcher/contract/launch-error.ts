// The error of a launch that did not succeed, with its result (its own file: errors.ts stays below
// the vocabulary, which the result needs).
import { ReportedError, type CellError } from "./errors";
import type { RunResult } from "./vocabulary";

/**
 * A launch that did not succeed: the message is the report's one-line summary, `traceback` the
 * whole report (first failed rank, its stack in cell lines, the others). An interrupted launch is
 * named KeyboardInterrupt, as Jupyter frontends expect.
 */
export class LaunchError extends ReportedError {
  override name = "LaunchError";
  constructor(readonly report: CellError, readonly result: RunResult) {
    super(report.evalue, report.traceback);
    this.name = report.ename;
  }
}

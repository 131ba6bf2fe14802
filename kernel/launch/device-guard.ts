// The device guard: the seed's rule is that no cell of the session may use a device before a launch.
// After every cell it scans the kernel process (launcher/device-scan) and remembers the first cell
// that touched an accelerator and the evidence; that cell gets a one-time warning, and every launch
// after it is refused before any process starts. A kernel restart is a new process: a clean guard.
import { describeEvidence, ProcessScanner, watchLists, type Evidence } from "../../launcher/api";
import { DeviceGuardError } from "../../launcher/contract";

export interface Touch {
  executionCount: number;
  firstLine: string;
  evidence: Evidence[];
}

export class DeviceGuard {
  private touched: Touch | null = null;
  private scanner: ProcessScanner | null = null;
  /** Evidence present before any cell ran (e.g. the kernel started on a machine's GPU): not a cell's. */
  private readonly preexisting: Set<string>;

  constructor() {
    this.preexisting = new Set(this.scan().map((e) => e.detail));
  }

  private listsKey = "";

  /** `quick`: after a cell, trust what cannot have changed (ProcessScanner.rescan); else read everything. */
  private scan(quick = false): Evidence[] {
    // A cell may extend the lists by setting TSLAUNCH_GUARD_* in process.env: reload when they change.
    const e = process.env;
    const key = [e.TSLAUNCH_GUARD_CONFIG, e.TSLAUNCH_GUARD_LIBRARIES, e.TSLAUNCH_GUARD_DEVICES, e.TSLAUNCH_GUARD_PACKAGES].join("\u0000");
    if (!this.scanner || key !== this.listsKey) {
      this.scanner?.close();
      this.scanner = new ProcessScanner(watchLists());
      this.listsKey = key;
      return this.scanner.scan();
    }
    return quick ? this.scanner.rescan() : this.scanner.scan();
  }

  get firstTouch(): Touch | null {
    return this.touched;
  }

  /**
   * Called after every cell. Returns the warning to show in that cell the first time a device is
   * seen, else null.
   */
  afterCell(executionCount: number, code: string): string | null {
    if (this.touched) return null;
    const evidence = this.scan(true).filter((e) => !this.preexisting.has(e.detail));
    if (evidence.length === 0) return null;
    this.touched = { executionCount, firstLine: firstCodeLine(code), evidence };
    return (
      `tslaunch: this cell touched an accelerator in the kernel: ${evidence.map(describeEvidence).join("; ")}. ` +
      `From now on %%launch, notebookLauncher and debugLauncher refuse to start (a launch would share the device with rank 0). ` +
      `Restart the kernel and move this code into the %%launch cell or the training function.`
    );
  }

  /** Throws before a launch when the session touched an accelerator. */
  checkBeforeLaunch(currentCell: number, currentCode: string): void {
    if (!this.touched) {
      // A device can be taken after a cell ended (a timer, a promise): look once more right now.
      const evidence = this.scan().filter((e) => !this.preexisting.has(e.detail));
      if (evidence.length > 0) this.touched = { executionCount: currentCell, firstLine: firstCodeLine(currentCode), evidence };
    }
    if (!this.touched) return;
    const t = this.touched;
    throw new DeviceGuardError(
      `cell [${t.executionCount}] (${JSON.stringify(t.firstLine)}) ${t.evidence.map(describeEvidence).join("; ")} in the kernel; ` +
        `a launch would share the device with rank 0, so nothing was started. ` +
        `Restart the kernel and move that code into the %%launch cell (or the function given to notebookLauncher).`,
    );
  }
}

function firstCodeLine(code: string): string {
  const line = code.split("\n").find((l) => l.trim() && !l.trim().startsWith("//")) ?? "";
  return line.length > 80 ? line.slice(0, 77) + "..." : line.trim();
}

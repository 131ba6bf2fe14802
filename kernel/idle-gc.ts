// Each cell makes the kernel's TypeScript service allocate tens of MiB that are garbage right after
// (a program update, a checker pass, an emit). V8 collects its old generation only under pressure,
// so a notebook left open keeps that garbage resident: after 20 small cells the kernel held 36 MiB
// more, of which 3 MiB were live. When the kernel has been idle a moment, a full collection gives
// it back, at no cost to a running cell (a request that comes first cancels it).
import v8 from "v8";
import vm from "vm";

let mallocTrim: ((pad: number) => number) | null | undefined;

/**
 * V8 compiles the TypeScript service's hot functions in malloc'd zones (28 MiB at peak over 20
 * cells); freed, glibc keeps those pages. malloc_trim(0) gives them back. Not glibc: nothing to do.
 */
function releaseFreedMalloc(): void {
  if (mallocTrim === undefined) {
    try {
      const koffi = require("koffi") as typeof import("koffi");
      mallocTrim = process.platform === "linux" ? koffi.load("libc.so.6").func("int malloc_trim(size_t pad)") : null;
    } catch {
      mallocTrim = null;
    }
  }
  mallocTrim?.(0);
}

export class IdleCollector {
  private timer: NodeJS.Timeout | null = null;
  private readonly collect: (() => void) | null;
  /** Heap in use after the last collection: a kernel that allocated little since skips the next. */
  private heapAfterLast = 0;

  constructor(
    private readonly delayMs = 400,
    private readonly minGrowthBytes = 4 * 1024 * 1024,
  ) {
    let collect: (() => void) | null = null;
    try {
      // gc() exists only with --expose-gc; setting the flag now exposes it to contexts made after.
      v8.setFlagsFromString("--expose-gc");
      collect = vm.runInNewContext("gc") as () => void;
    } catch {
      collect = null; // a runtime without it: memory is left to V8's own heuristics
    }
    this.collect = collect;
  }

  /** A request is being handled: no collection now. */
  busy(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Nothing is running or waiting: collect after `delayMs` unless a request comes first. */
  idle(): void {
    if (!this.collect) return;
    this.busy();
    this.timer = setTimeout(() => {
      this.timer = null;
      if (process.memoryUsage().heapUsed - this.heapAfterLast < this.minGrowthBytes) return;
      // Twice: the first collection frees the garbage, the second lets V8 release the emptied pages.
      this.collect!();
      this.collect!();
      releaseFreedMalloc();
      this.heapAfterLast = process.memoryUsage().heapUsed;
    }, this.delayMs);
    this.timer.unref();
  }
}

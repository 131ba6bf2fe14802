// Each cell makes the kernel's TypeScript service allocate tens of MiB that are garbage right after
// (a program update, a checker pass, an emit). V8 collects its old generation only under pressure,
// so a notebook left open keeps that garbage resident: after 20 small cells the kernel held 36 MiB
// more, of which 3 MiB were live. When the kernel has been idle a moment, a full collection gives
// it back, at no cost to a running cell (a request that comes first cancels it).
//
// Outside the heap, V8's optimizing compiler works in malloc'd zones on its own threads, tens of
// MiB once a notebook's code gets hot. glibc's default raises its trim threshold after large frees,
// and each thread's arena then keeps that much for good (+45 MiB over 20 cells, where malloc_trim
// cannot reach it). With the thresholds fixed (process-libc.ts) free() gives it back at once, and
// malloc_trim at idle returns what is left in the middle of the arenas.
import v8 from "v8";
import vm from "vm";
import { processLibc } from "../launcher/contract";

export class IdleCollector {
  private timer: NodeJS.Timeout | null = null;
  private readonly collect: (() => void) | null;
  /** Heap in use after the last collection: a kernel that allocated little since skips the next. */
  private heapAfterLast = 0;
  /** Resident size after the last look: growth outside the heap is given back too. */
  private rssAfterLast = 0;

  constructor(
    private readonly delayMs = 400,
    private readonly minGrowthBytes = 4 * 1024 * 1024,
    private readonly shrinkAfterMs = 6000,
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
    processLibc()?.fixMallocThresholds();
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
      if (process.memoryUsage().heapUsed - this.heapAfterLast >= this.minGrowthBytes) {
        // Twice: the first collection frees the garbage, the second lets V8 release the emptied pages.
        this.collect!();
        this.collect!();
        processLibc()?.trim();
        this.heapAfterLast = process.memoryUsage().heapUsed;
        this.shrinkYoungGenerationLater();
      } else if (process.memoryUsage.rss() - this.rssAfterLast >= this.minGrowthBytes) {
        // Little new garbage on the heap, but the process grew: malloc'd memory (compiler zones).
        processLibc()?.trim();
      }
      this.rssAfterLast = process.memoryUsage.rss();
    }, this.delayMs);
    this.timer.unref();
  }

  /**
   * A burst of cells grows V8's young generation to its most (32 MiB resident), and a collection
   * right after keeps it: V8 gives it back only when a collection sees a low allocation rate over
   * the last 5 s. So one more, 6 s into the quiet (measured: a kernel idle 7 s after 40 cells holds
   * 151 MiB instead of 184). The next burst grows it again as it needs.
   */
  private shrinkYoungGenerationLater(): void {
    this.timer = setTimeout(() => {
      this.timer = null;
      this.collect!();
    }, this.shrinkAfterMs);
    this.timer.unref();
  }
}

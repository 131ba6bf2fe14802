// Batches text for iopub `stream` messages: one message per stream name every ~50 ms instead of
// one per write or per line, so 4 ranks x 50 000 lines do not become 200 000 messages.
//
// It also paces them. jupyter_server drops iopub output above `iopub_data_rate_limit` (1 MB/s by
// default, averaged over 3 s) and prints "IOPub data rate exceeded": 4 ranks x 50 000 lines lost ~9 %
// of their lines that way in our tests. Under a Jupyter server the batcher keeps below that rate
// (a token bucket), so a flood arrives late rather than not at all.
export type StreamName = "stdout" | "stderr";

const MAX_MESSAGE_CHARS = 1 << 20; // frontends slow down on huge single messages
/** Under pacing, the smallest message worth sending (unless less is waiting). */
const MIN_PACED_CHUNK = 16 * 1024;
/** jupyter_server's default iopub_data_rate_limit, bytes per second. */
const SERVER_DEFAULT_RATE = 1_000_000;

/**
 * The pace for this kernel: TSLAUNCH_IOPUB_RATE_LIMIT (bytes/s, 0 = none) if set; else 80 % of
 * jupyter_server's default when a Jupyter client started us (JPY_PARENT_PID), else none.
 */
export function iopubRateFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const set = env.TSLAUNCH_IOPUB_RATE_LIMIT;
  if (set !== undefined && set !== "") {
    const n = Number(set);
    return Number.isFinite(n) && n > 0 ? n : 0;
  }
  return env.JPY_PARENT_PID ? SERVER_DEFAULT_RATE * 0.8 : 0;
}

export class StreamBatcher {
  private pending: { name: StreamName; parts: string[]; size: number } | null = null;
  private queued: { name: StreamName; text: string }[] = [];
  private timer: NodeJS.Timeout | null = null;
  private tokens: number;
  private lastRefill = performance.now();
  private drainWaiters: (() => void)[] = [];

  constructor(
    private readonly emit: (name: StreamName, text: string) => void,
    private readonly intervalMs = 50,
    /** Bytes per second; 0 for no pacing. */
    private readonly rate = 0,
  ) {
    this.tokens = this.capacity;
  }

  /**
   * The bucket holds a quarter second of output: at 80 % of the limit, any 3 s window (the
   * server's averaging window) then carries at most 0.2 + 2.4 = 2.6 s worth, under its 3 s.
   */
  private get capacity(): number {
    return this.rate / 4;
  }

  write(name: StreamName, text: string): void {
    if (!text) return;
    // Switching stream closes the current batch so stdout and stderr keep their relative order.
    if (this.pending && this.pending.name !== name) this.seal();
    this.pending ??= { name, parts: [], size: 0 };
    this.pending.parts.push(text);
    this.pending.size += text.length;
    if (this.pending.size >= MAX_MESSAGE_CHARS) this.seal();
    if (!this.timer) this.timer = setTimeout(() => this.flush(), this.intervalMs);
  }

  /** Sends everything the pace allows now; the rest follows on a timer (see drained()). */
  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.seal();
    while (this.queued.length > 0) {
      const next = this.queued[0];
      if (this.rate > 0) {
        this.refill();
        // Wait for a useful amount of budget: many tiny messages would cost more than they carry.
        const budget = Math.floor(this.tokens);
        if (budget < Math.min(next.text.length, MIN_PACED_CHUNK)) break;
        if (next.text.length > budget) {
          // Whole lines only, so a line is never split across messages.
          const cut = next.text.lastIndexOf("\n", budget - 1);
          if (cut < 0 && this.tokens < this.capacity) break; // one long line: wait for a full bucket
          const take = cut < 0 ? next.text.length : cut + 1;
          const part = next.text.slice(0, take);
          this.tokens -= Buffer.byteLength(part);
          if (take < next.text.length) {
            next.text = next.text.slice(take);
            this.emit(next.name, part);
            continue;
          }
        } else {
          this.tokens -= Buffer.byteLength(next.text);
        }
      }
      this.queued.shift();
      this.emit(next.name, next.text);
    }
    if (this.queued.length > 0) {
      this.timer = setTimeout(() => this.flush(), Math.max(this.intervalMs, 100));
      return;
    }
    for (const w of this.drainWaiters.splice(0)) w();
  }

  /** Resolves once everything written so far has been emitted (immediately without pacing). */
  drained(): Promise<void> {
    this.flush();
    if (this.queued.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private refill(): void {
    const now = performance.now();
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.lastRefill) / 1000) * this.rate);
    this.lastRefill = now;
  }

  private seal(): void {
    if (!this.pending) return;
    this.queued.push({ name: this.pending.name, text: this.pending.parts.join("") });
    this.pending = null;
  }
}

// Every output a cell sends on iopub goes through here, in the order it was made: stream text
// (batched: one message per stream every ~50 ms, not one per write or per line, so 4 ranks x 50 000
// lines do not become 200 000 messages) and displays (display_data, update_display_data).
//
// It also paces them. jupyter_server drops iopub output above `iopub_data_rate_limit` (1 MB/s by
// default) and above `iopub_msg_rate_limit` (1 000 messages/s), both averaged over 3 s, and prints
// "IOPub data/message rate exceeded": 4 ranks x 50 000 lines lost ~9 % of their lines, 4 ranks x
// 1 500 displays lost half, and a 3 MB line was dropped whole. Under a Jupyter server the pacer stays
// below both rates (two token buckets), splits a line too big for the byte budget across messages
// (a frontend joins stream messages back), and keeps only the newest of several queued updates of
// one display: a flood arrives late rather than not at all.
import type { DisplayData } from "./wire";

export type StreamName = "stdout" | "stderr";

const MAX_MESSAGE_CHARS = 1 << 20; // frontends slow down on huge single messages
/** Under pacing, the smallest stream message worth sending (unless less is waiting). */
const MIN_PACED_CHUNK = 16 * 1024;
/** jupyter_server's defaults: iopub_data_rate_limit (bytes/s) and iopub_msg_rate_limit (messages/s). */
const SERVER_DEFAULT_RATE = 1_000_000;
const SERVER_DEFAULT_MSG_RATE = 1000;
/** The share of the server's limits we use. */
const PACE_SHARE = 0.8;

export interface IopubPace {
  /** Bytes per second; 0 for no pacing. */
  bytes: number;
  /** Messages per second; 0 for no pacing. */
  messages: number;
}

function rateFrom(raw: string | undefined, underServer: boolean, serverDefault: number): number {
  if (raw !== undefined && raw !== "") {
    const n = Number(raw);
    return Number.isFinite(n) && n > 0 ? n : 0;
  }
  return underServer ? serverDefault * PACE_SHARE : 0;
}

/**
 * The pace for this kernel: TSLAUNCH_IOPUB_RATE_LIMIT (bytes/s) and TSLAUNCH_IOPUB_MSG_RATE_LIMIT
 * (messages/s), 0 = none, if set; else 80 % of jupyter_server's defaults when a Jupyter client
 * started us (JPY_PARENT_PID), else none.
 */
export function iopubPaceFromEnv(env: NodeJS.ProcessEnv = process.env): IopubPace {
  const underServer = Boolean(env.JPY_PARENT_PID);
  return {
    bytes: rateFrom(env.TSLAUNCH_IOPUB_RATE_LIMIT, underServer, SERVER_DEFAULT_RATE),
    messages: rateFrom(env.TSLAUNCH_IOPUB_MSG_RATE_LIMIT, underServer, SERVER_DEFAULT_MSG_RATE),
  };
}

type Item =
  | { kind: "stream"; name: StreamName; text: string }
  | { kind: "display"; update: boolean; content: DisplayData; bytes: number };

export interface OutputSink {
  stream(name: StreamName, text: string): void;
  display(content: DisplayData, update: boolean): void;
}

/** A token bucket holding a quarter second of its rate. */
class Bucket {
  private tokens: number;
  private last = performance.now();

  constructor(readonly rate: number) {
    this.tokens = this.capacity;
  }

  /**
   * A quarter second: at 80 % of a limit, any 3 s window (the server's averaging window) then
   * carries at most 0.2 + 2.4 = 2.6 s worth, under its 3 s.
   */
  get capacity(): number {
    return this.rate / 4;
  }

  get available(): number {
    if (this.rate <= 0) return Infinity;
    const now = performance.now();
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
    return Math.floor(this.tokens);
  }

  take(n: number): void {
    if (this.rate > 0) this.tokens -= n;
  }
}

export class OutputPacer {
  private pending: { name: StreamName; parts: string[]; size: number } | null = null;
  private queued: Item[] = [];
  private timer: NodeJS.Timeout | null = null;
  private readonly bytes: Bucket;
  private readonly messages: Bucket;
  private drainWaiters: (() => void)[] = [];

  constructor(
    private readonly sink: OutputSink,
    private readonly intervalMs = 50,
    pace: IopubPace = { bytes: 0, messages: 0 },
  ) {
    this.bytes = new Bucket(pace.bytes);
    this.messages = new Bucket(pace.messages);
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

  /** A display after everything written before it; a queued update of the same display is replaced. */
  display(content: DisplayData, update: boolean): void {
    this.seal();
    const id = content.transient?.display_id;
    const bytes = Buffer.byteLength(JSON.stringify(content.data));
    if (update && id !== undefined) {
      const stale = this.queued.find((i) => i.kind === "display" && i.update && i.content.transient?.display_id === id);
      if (stale && stale.kind === "display") {
        stale.content = content;
        stale.bytes = bytes;
        return this.flush();
      }
    }
    this.queued.push({ kind: "display", update, content, bytes });
    this.flush();
  }

  /** Sends everything the pace allows now; the rest follows on a timer (see drained()). */
  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.seal();
    while (this.queued.length > 0 && this.sendNext()) {}
    if (this.queued.length > 0) {
      this.timer = setTimeout(() => this.flush(), Math.max(this.intervalMs, 100));
      return;
    }
    for (const w of this.drainWaiters.splice(0)) w();
  }

  /** Sends (part of) the first queued item if the pace allows; false when it must wait. */
  private sendNext(): boolean {
    const next = this.queued[0];
    if (this.messages.available < 1) return false;
    const budget = this.bytes.available;
    if (next.kind === "display") {
      // A display cannot be split: it waits for a full byte bucket at most, then goes.
      if (next.bytes > budget && budget < this.bytes.capacity) return false;
      this.take(next.bytes);
      this.queued.shift();
      this.sink.display(next.content, next.update);
      return true;
    }
    const size = Buffer.byteLength(next.text);
    if (size <= budget) {
      this.take(size);
      this.queued.shift();
      this.sink.stream(next.name, next.text);
      return true;
    }
    // Wait for a useful amount of budget: many tiny messages would cost more than they carry.
    if (budget < MIN_PACED_CHUNK) return false;
    // Whole lines when they fit; a line longer than the budget is cut (the frontend joins it back).
    const newline = next.text.lastIndexOf("\n", budget - 1);
    const part = newline >= 0 ? next.text.slice(0, newline + 1) : prefixWithin(next.text, budget);
    this.take(Buffer.byteLength(part));
    next.text = next.text.slice(part.length);
    this.sink.stream(next.name, part);
    return true;
  }

  private take(bytes: number): void {
    this.bytes.take(bytes);
    this.messages.take(1);
  }

  /** Resolves once everything written so far has been emitted (immediately without pacing). */
  drained(): Promise<void> {
    this.flush();
    if (this.queued.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private seal(): void {
    if (!this.pending) return;
    this.queued.push({ kind: "stream", name: this.pending.name, text: this.pending.parts.join("") });
    this.pending = null;
  }
}

/** The longest start of `text` of at most `bytes` UTF-8 bytes that does not split a character. */
function prefixWithin(text: string, bytes: number): string {
  let end = Math.min(text.length, bytes);
  while (end > 1 && Buffer.byteLength(text.slice(0, end)) > bytes) end = Math.floor(end * 0.9);
  if (end < text.length && /[\ud800-\udbff]/.test(text[end - 1])) end--; // a surrogate pair stays whole
  return text.slice(0, Math.max(1, end));
}

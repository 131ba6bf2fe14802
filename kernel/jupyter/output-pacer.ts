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
//
// What waits is bounded in memory: past TSLAUNCH_OUTPUT_MEMORY bytes (16 MB by default) the rest of
// the backlog goes, in order, to a file that is unlinked as soon as it is opened (so nothing is left
// on disk even if the kernel is killed) and is read back as the pace allows. The cell says so once.
import { closeSync, openSync, readSync, unlinkSync, writeSync } from "fs";
import os from "os";
import path from "path";
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
/** Backlog kept in memory before the rest goes to disk. */
const DEFAULT_MEMORY_LIMIT = 16 * 1024 * 1024;
/** How much of the spill file is read back at a time. */
const SPILL_READ_BYTES = 1 << 20;

/** TSLAUNCH_OUTPUT_MEMORY: bytes of paced output kept in memory before spilling to disk. */
export function outputMemoryLimitFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const n = Number(env.TSLAUNCH_OUTPUT_MEMORY);
  return env.TSLAUNCH_OUTPUT_MEMORY && Number.isFinite(n) && n > 0 ? n : DEFAULT_MEMORY_LIMIT;
}

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
  /** Bytes of the queued items (what the backlog costs in memory). */
  private queuedBytes = 0;
  private spill: SpillFile | null = null;
  /** Bytes that went to disk so far (for the notice and the tests). */
  spilledBytes = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly bytes: Bucket;
  private readonly messages: Bucket;
  private drainWaiters: (() => void)[] = [];

  constructor(
    private readonly sink: OutputSink,
    private readonly intervalMs = 50,
    pace: IopubPace = { bytes: 0, messages: 0 },
    private readonly memoryLimit = DEFAULT_MEMORY_LIMIT,
  ) {
    this.bytes = new Bucket(pace.bytes);
    this.messages = new Bucket(pace.messages);
  }

  /** Bytes of backlog held in memory now. */
  get backlogInMemory(): number {
    return this.queuedBytes;
  }

  /** Queues an item in memory, or on disk once the memory share is used (or the disk already holds earlier ones). */
  private enqueue(item: Item): void {
    const size = item.kind === "stream" ? item.text.length : item.bytes;
    if (!this.spill && this.queuedBytes + size > this.memoryLimit && this.queued.length > 0) this.spill = this.openSpill();
    if (this.spill) {
      if (this.spill.append(item)) {
        this.spilledBytes += size;
        return;
      }
      // The disk is full too: take back what it holds, in order, and keep everything in memory.
      this.takeBackSpill();
    }
    this.queued.push(item);
    this.queuedBytes += size;
  }

  /** The spill notice was given since the backlog was last empty at a drained() (once per cell). */
  private noticeGiven = false;

  private openSpill(): SpillFile | null {
    const file = SpillFile.open();
    if (file && !this.noticeGiven) {
      this.noticeGiven = true;
      const mb = (this.memoryLimit / 1e6).toFixed(0);
      // Said at once (ahead of the waiting output): the reader should know why it comes late.
      this.sink.stream(
        "stderr",
        `tslaunch: output arrives faster than the frontend may receive it (jupyter_server's iopub rate limits); beyond ${mb} MB ` +
          `it waits on disk and follows at the allowed rate. Nothing is lost.\n`,
      );
    }
    return file;
  }

  private takeBackSpill(): void {
    const spill = this.spill!;
    this.spill = null;
    for (let items = spill.read(Infinity); items.length > 0; items = spill.read(Infinity)) {
      for (const i of items) {
        this.queued.push(i);
        this.queuedBytes += i.kind === "stream" ? i.text.length : i.bytes;
      }
    }
    spill.close();
  }

  /** When memory is empty, brings the next part of the spill file back. */
  private refillFromSpill(): void {
    if (!this.spill || this.queued.length > 0) return;
    const items = this.spill.read(SPILL_READ_BYTES);
    for (const i of items) {
      this.queued.push(i);
      this.queuedBytes += i.kind === "stream" ? i.text.length : i.bytes;
    }
    if (this.spill.exhausted) {
      this.spill.close();
      this.spill = null;
    }
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
    if (update && id !== undefined && !this.spill) {
      const stale = this.queued.find((i) => i.kind === "display" && i.update && i.content.transient?.display_id === id);
      if (stale && stale.kind === "display") {
        this.queuedBytes += bytes - stale.bytes;
        stale.content = content;
        stale.bytes = bytes;
        return this.flush();
      }
    }
    this.enqueue({ kind: "display", update, content, bytes });
    this.flush();
  }

  /** Sends everything the pace allows now; the rest follows on a timer (see drained()). */
  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.seal();
    for (;;) {
      this.refillFromSpill();
      if (this.queued.length === 0 || !this.sendNext()) break;
    }
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
      this.queuedBytes -= next.bytes;
      this.sink.display(next.content, next.update);
      return true;
    }
    const size = Buffer.byteLength(next.text);
    if (size <= budget) {
      this.take(size);
      this.queued.shift();
      this.queuedBytes -= next.text.length;
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
    this.queuedBytes -= part.length;
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
    if (this.queued.length === 0) {
      this.noticeGiven = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private seal(): void {
    if (!this.pending) return;
    const item: Item = { kind: "stream", name: this.pending.name, text: this.pending.parts.join("") };
    this.pending = null;
    this.enqueue(item);
  }
}

/**
 * The backlog's overflow on disk: one JSON line per item, appended at the end and read from the
 * start. The file is unlinked right after it is opened: only this open descriptor reaches it, and
 * the system frees it when the descriptor closes or the kernel dies, however it dies.
 */
class SpillFile {
  private writeAt = 0;
  private readAt = 0;
  private leftover = Buffer.alloc(0);

  private constructor(private readonly fd: number) {}

  static open(): SpillFile | null {
    const file = path.join(os.tmpdir(), `tslaunch-output-${process.pid}-${Math.random().toString(36).slice(2)}`);
    try {
      const fd = openSync(file, "wx+", 0o600);
      unlinkSync(file);
      return new SpillFile(fd);
    } catch {
      return null; // no room or no right to write: the backlog stays in memory
    }
  }

  /** False when the write failed (a full disk): the caller takes the file's items back. */
  append(item: Item): boolean {
    const line = Buffer.from(JSON.stringify(item) + "\n");
    try {
      for (let done = 0; done < line.length; ) done += writeSync(this.fd, line, done, line.length - done, this.writeAt + done);
    } catch {
      return false;
    }
    this.writeAt += line.length;
    return true;
  }

  /** The next whole items, about `bytes` of them (all of them for Infinity). */
  read(bytes: number): Item[] {
    const items: Item[] = [];
    while (this.readAt < this.writeAt) {
      const chunk = Buffer.alloc(Math.min(SPILL_READ_BYTES, this.writeAt - this.readAt));
      const n = readSync(this.fd, chunk, 0, chunk.length, this.readAt);
      this.readAt += n;
      // Cut at the last newline byte: a character split between two reads is decoded whole.
      const data = Buffer.concat([this.leftover, chunk.subarray(0, n)]);
      const end = data.lastIndexOf(0x0a);
      this.leftover = data.subarray(end + 1);
      if (end >= 0) for (const l of data.subarray(0, end).toString("utf8").split("\n")) if (l) items.push(JSON.parse(l) as Item);
      if (items.length > 0 && bytes !== Infinity) break;
    }
    return items;
  }

  get exhausted(): boolean {
    return this.readAt >= this.writeAt && this.leftover.length === 0;
  }

  close(): void {
    try {
      closeSync(this.fd);
    } catch {
      // already closed
    }
  }
}

/** The longest start of `text` of at most `bytes` UTF-8 bytes that does not split a character. */
function prefixWithin(text: string, bytes: number): string {
  let end = Math.min(text.length, bytes);
  while (end > 1 && Buffer.byteLength(text.slice(0, end)) > bytes) end = Math.floor(end * 0.9);
  if (end < text.length && /[\ud800-\udbff]/.test(text[end - 1])) end--; // a surrogate pair stays whole
  return text.slice(0, Math.max(1, end));
}

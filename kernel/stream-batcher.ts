// Batches text for iopub `stream` messages: one message per stream name every ~50 ms instead of
// one per write or per line, so 4 ranks x 50 000 lines do not become 200 000 messages.
export type StreamName = "stdout" | "stderr";

const MAX_MESSAGE_CHARS = 1 << 20; // frontends slow down on huge single messages

export class StreamBatcher {
  private pending: { name: StreamName; parts: string[]; size: number } | null = null;
  private queued: { name: StreamName; text: string }[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly emit: (name: StreamName, text: string) => void,
    private readonly intervalMs = 50,
  ) {}

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

  /** Sends everything now (end of a cell, before `idle`). */
  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.seal();
    const out = this.queued;
    this.queued = [];
    for (const { name, text } of out) this.emit(name, text);
  }

  private seal(): void {
    if (!this.pending) return;
    this.queued.push({ name: this.pending.name, text: this.pending.parts.join("") });
    this.pending = null;
  }
}

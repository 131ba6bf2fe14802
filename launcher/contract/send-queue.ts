// zeromq.js allows one pending send per socket: a second `send()` while one is in flight throws
// "Socket is busy writing". tslab 1.0.22 fires sends without waiting, so a cell printing 2 000 lines
// loses most of them and never sends `idle`. Every socket we send on goes through one of these.
export interface Sendable {
  send(frames: Buffer[] | Buffer | string): Promise<void>;
}

export class SendQueue {
  private readonly pending: Buffer[][] = [];
  private draining = false;
  private idleWaiters: (() => void)[] = [];
  private closed = false;

  constructor(
    private readonly socket: Sendable,
    private readonly onError: (err: unknown) => void = () => {},
  ) {}

  /** Queues frames; they go out in order, one send at a time. */
  push(frames: Buffer[]): void {
    if (this.closed) return;
    this.pending.push(frames);
    if (!this.draining) void this.drain();
  }

  /** Resolves once everything queued so far has been handed to ZeroMQ. */
  flushed(): Promise<void> {
    if (!this.draining && this.pending.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  get size(): number {
    return this.pending.length;
  }

  close(): void {
    this.closed = true;
    this.pending.length = 0;
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.pending.length > 0 && !this.closed) {
        const frames = this.pending.shift()!;
        try {
          await this.socket.send(frames);
        } catch (err) {
          this.onError(err);
        }
      }
    } finally {
      this.draining = false;
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }
}

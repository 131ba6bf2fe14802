// The kernel's side of Jupyter's stdin channel: prompt() blocks the cell until the frontend answers,
// input() awaits the answer. The sockets live in stdin-heartbeat-thread.ts, so a blocked main thread
// still gets its answer (and still answers heartbeats). A blocking wait runs under Node's
// breakOnSigint, so Jupyter's interrupt (SIGINT) ends it with the usual KeyboardInterrupt.
import { join } from "path";
import * as vm from "vm";
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from "worker_threads";
import type { StdinAnswer, StdinCommand, StdinQuestion, StdinThreadData } from "./stdin-heartbeat-thread";
import type { ConnectionInfo, ExecuteRequest, JupyterMessage } from "./wire";
import { runBreakable } from "../interrupt-signal";

/** Asks and waits (see askBlocking); compiled once, run with breakOnSigint so an interrupt ends the wait. */
const ASK_AND_WAIT = Symbol.for("tslaunch.stdinAskAndWait");
const ASK_AND_WAIT_SCRIPT = new vm.Script("globalThis[Symbol.for('tslaunch.stdinAskAndWait')]()", { filename: "tslaunch:stdin" });

export class StdinChannel {
  private readonly worker: Worker;
  private readonly answered = new Int32Array(new SharedArrayBuffer(8));
  private closed = false;
  private readonly blockingAnswers: MessagePort;
  private readonly pending = new Map<number, { resolve: (value: string) => void; reject: (err: Error) => void }>();
  private nextId = 1;
  private readonly ready: Promise<void>;

  constructor(conn: ConnectionInfo) {
    const { port1, port2 } = new MessageChannel();
    this.blockingAnswers = port1;
    const data: StdinThreadData = { conn, answered: this.answered.buffer as SharedArrayBuffer, blockingAnswers: port2 };
    this.worker = new Worker(join(__dirname, "stdin-heartbeat-thread.js"), { workerData: data, transferList: [port2] });
    this.worker.unref();
    // zeromq aborts the whole process ("terminate called after throwing Napi::Error") when it exits
    // while this thread holds open sockets: close them first, on every way out.
    process.on("exit", () => this.close());
    this.ready = new Promise((resolve, reject) => {
      this.worker.on("message", (answer: StdinAnswer) => {
        if (answer.type === "ready") return resolve();
        if (answer.type === "failed" && answer.id === 0) return reject(new Error(answer.message));
        const waiter = this.pending.get(answer.id);
        if (!waiter) return;
        this.pending.delete(answer.id);
        if (answer.type === "answer") waiter.resolve(answer.value);
        else if (answer.type === "failed") waiter.reject(new Error(answer.message));
      });
      this.worker.once("error", reject);
    });
  }

  /** Resolves once the stdin and heartbeat sockets are bound. */
  started(): Promise<void> {
    return this.ready;
  }

  /** Asks and blocks the thread until the answer comes (prompt()). */
  askBlocking(request: JupyterMessage<ExecuteRequest>, prompt: string, password: boolean): string {
    const id = this.nextId++;
    Atomics.store(this.answered, 0, 0);
    // The question is sent from inside the breakOnSigint run: an interrupt that follows the
    // input_request at once cannot fall between sending and waiting, where Node would drop it.
    (globalThis as Record<symbol, unknown>)[ASK_AND_WAIT] = (): string => {
      this.send(this.question(id, request, prompt, password, true));
      for (;;) {
        Atomics.wait(this.answered, 0, 0);
        const received = receiveMessageOnPort(this.blockingAnswers)?.message as StdinAnswer | undefined;
        if (received?.type === "answer" && received.id === id) return received.value;
        if (received?.type === "failed" && received.id === id) throw new Error(received.message);
        Atomics.store(this.answered, 0, 0); // an answer to an earlier, interrupted question
      }
    };
    try {
      return runBreakable(() => ASK_AND_WAIT_SCRIPT.runInThisContext({ breakOnSigint: true }) as string);
    } catch (err) {
      this.send({ type: "cancel", id });
      throw err;
    }
  }

  /** Asks without blocking (input()). */
  ask(request: JupyterMessage<ExecuteRequest>, prompt: string, password: boolean): Promise<string> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      // Sent once the current synchronous run is over: a cell's first part runs under tslab's
      // breakOnSigint, and an interrupt that came while Node hands SIGINT back to its listeners would be lost.
      queueMicrotask(() => this.send(this.question(id, request, prompt, password, false)));
    });
  }

  /** An interrupted cell: questions still waiting are withdrawn and their awaits end with `reason`. */
  cancelAll(reason: Error): void {
    for (const [id, waiter] of this.pending) {
      this.send({ type: "cancel", id });
      waiter.reject(reason);
    }
    this.pending.clear();
  }

  /** Closes the thread's sockets and waits (at most a second) until they are closed. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.send({ type: "close" });
    Atomics.wait(this.answered, 1, 0, 1000);
  }

  private question(id: number, request: JupyterMessage<ExecuteRequest>, prompt: string, password: boolean, blocking: boolean): StdinQuestion {
    return { type: "ask", id, identities: request.identities, parent: request.header, prompt, password, blocking };
  }

  private send(command: StdinCommand): void {
    if (this.closed && command.type !== "close") return;
    this.worker.postMessage(command);
  }
}

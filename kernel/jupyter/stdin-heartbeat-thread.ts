// A worker thread that owns two of the kernel's sockets, so that they keep working while the main
// thread is blocked: the heartbeat (a cell in a busy loop still answers, as ipykernel's heartbeat
// thread does) and stdin (a cell blocked in prompt() waits on it). Started by stdin-channel.ts, which
// sends it questions to ask; the answer goes back on the port the question names.
import { parentPort, workerData, type MessagePort } from "worker_threads";
import { Reply, Router } from "zeromq";
import { decode, encode, endpoint, newHeader, WireError, type ConnectionInfo, type MessageHeader } from "./wire";

export interface StdinThreadData {
  conn: ConnectionInfo;
  /**
   * Int32Array over a SharedArrayBuffer: [0] goes to 1 (and is notified) when a blocking answer is
   * posted; [1] goes to 1 once the sockets are closed.
   */
  answered: SharedArrayBuffer;
  /** Where answers to blocking questions go (the main thread reads it with receiveMessageOnPort). */
  blockingAnswers: MessagePort;
}

/** A question from the main thread: an input_request to the client that sent `identities`. */
export interface StdinQuestion {
  type: "ask";
  id: number;
  identities: Uint8Array[];
  parent: MessageHeader;
  prompt: string;
  password: boolean;
  blocking: boolean;
}

export type StdinCommand = StdinQuestion | { type: "cancel"; id: number } | { type: "close" };
export type StdinAnswer = { type: "answer"; id: number; value: string } | { type: "ready" } | { type: "failed"; id: number; message: string };

const { conn, answered, blockingAnswers } = workerData as StdinThreadData;
const answeredFlag = new Int32Array(answered);
const stdin = new Router();
const hb = new Reply();
/** Questions in order: the frontend is asked one at a time, as ipykernel does. */
const waiting: StdinQuestion[] = [];
let asked: StdinQuestion | null = null;

function post(question: StdinQuestion, answer: StdinAnswer): void {
  if (question.blocking) {
    blockingAnswers.postMessage(answer);
    Atomics.store(answeredFlag, 0, 1);
    Atomics.notify(answeredFlag, 0);
  } else {
    parentPort!.postMessage(answer);
  }
}

async function askNext(): Promise<void> {
  if (asked || waiting.length === 0) return;
  asked = waiting.shift()!;
  const frames = encode(conn.key, {
    identities: asked.identities.map((id) => Buffer.from(id)),
    header: newHeader("input_request", asked.parent.session),
    parent_header: asked.parent,
    metadata: {},
    content: { prompt: asked.prompt, password: asked.password },
  });
  try {
    await stdin.send(frames);
  } catch (err) {
    const question = asked;
    asked = null;
    post(question, { type: "failed", id: question.id, message: `could not send the input request: ${String(err)}` });
    void askNext();
  }
}

async function receiveReplies(): Promise<void> {
  for await (const frames of stdin) {
    let msg;
    try {
      msg = decode(conn.key, frames);
    } catch (err) {
      if (err instanceof WireError || err instanceof SyntaxError) continue; // unsigned or broken: ignored, as the spec says
      throw err;
    }
    // Clients (jupyter_client's among them) often leave input_reply's parent header empty: with one
    // question out at a time, any input_reply answers it.
    if (msg.header.msg_type !== "input_reply" || !asked) continue;
    const question = asked;
    asked = null;
    const value = (msg.content as { value?: unknown }).value;
    post(question, { type: "answer", id: question.id, value: typeof value === "string" ? value : "" });
    void askNext();
  }
}

async function heartbeat(): Promise<void> {
  for await (const frames of hb) await hb.send(frames);
}

parentPort!.on("message", (command: StdinCommand) => {
  if (command.type === "ask") {
    waiting.push(command);
    void askNext();
  } else if (command.type === "cancel") {
    // An interrupted question: a late answer to it is dropped (the next question is asked anew).
    if (asked?.id === command.id) asked = null;
    const at = waiting.findIndex((q) => q.id === command.id);
    if (at >= 0) waiting.splice(at, 1);
    void askNext();
  } else {
    // The main thread waits for this before it exits: zeromq aborts the process when a thread
    // ends with a socket still open.
    stdin.close();
    hb.close();
    parentPort!.close();
    Atomics.store(answeredFlag, 1, 1);
    Atomics.notify(answeredFlag, 1);
  }
});

void Promise.all([stdin.bind(endpoint(conn, "stdin")), hb.bind(endpoint(conn, "hb"))]).then(
  () => {
    parentPort!.postMessage({ type: "ready" } satisfies StdinAnswer);
    receiveReplies().catch(() => {}); // ends when the socket closes
    heartbeat().catch(() => {});
  },
  (err) => parentPort!.postMessage({ type: "failed", id: 0, message: `could not bind stdin/heartbeat: ${String(err)}` } satisfies StdinAnswer),
);

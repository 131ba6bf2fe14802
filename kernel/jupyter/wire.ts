// The Jupyter wire protocol (messaging spec 5.3): how one message becomes ZeroMQ frames and back.
// Shared by the kernel (kernel/server.ts) and by our own client (kernel/client/), so that both
// sides sign and parse with one definition.
// Spec: https://jupyter-client.readthedocs.io/en/latest/messaging.html#the-wire-protocol
import { createHmac, randomUUID, timingSafeEqual } from "crypto";

export const PROTOCOL_VERSION = "5.3";
const DELIMITER = Buffer.from("<IDS|MSG>");

export interface MessageHeader {
  msg_id: string;
  session: string;
  username: string;
  date: string;
  msg_type: string;
  version: string;
}

export interface JupyterMessage<C = Record<string, unknown>> {
  /** ZeroMQ routing identities (ROUTER sockets); empty for PUB/SUB. */
  identities: Buffer[];
  header: MessageHeader;
  parent_header: Partial<MessageHeader>;
  metadata: Record<string, unknown>;
  content: C;
  buffers: Buffer[];
}

export class WireError extends Error {}

// Message contents, declared once (messaging spec 5.3): what the kernel reads from requests and
// what it sends. The kernel's handlers and the server's reply/publish are typed by these maps.

export interface ExecuteRequest {
  code: string;
  silent?: boolean;
  store_history?: boolean;
  user_expressions?: Record<string, string>;
  allow_stdin?: boolean;
  stop_on_error?: boolean;
}

export interface CodeAtCursor {
  code: string;
  /** In Unicode code points (protocol 5.3), not UTF-16 units. */
  cursor_pos?: number;
}

export interface RequestContents {
  kernel_info_request: Record<string, never>;
  execute_request: ExecuteRequest;
  complete_request: CodeAtCursor;
  inspect_request: CodeAtCursor & { detail_level?: 0 | 1 };
  is_complete_request: { code: string };
  comm_info_request: { target_name?: string };
  history_request: Record<string, unknown>;
  interrupt_request: Record<string, never>;
  shutdown_request: { restart?: boolean };
}

export interface ErrorContent {
  ename: string;
  evalue: string;
  traceback: string[];
}

export type MimeBundle = Record<string, unknown>;

export interface KernelInfoReply {
  status: "ok";
  protocol_version: string;
  implementation: string;
  implementation_version: string;
  language_info: { name: string; version: string; mimetype: string; file_extension: string; codemirror_mode?: unknown };
  banner: string;
  help_links: { text: string; url: string }[];
  debugger: boolean;
}

export type ExecuteReply =
  | { status: "ok"; execution_count: number; user_expressions: Record<string, unknown>; payload: unknown[] }
  | ({ status: "error"; execution_count: number } & ErrorContent)
  | { status: "aborted"; execution_count: number };

export interface CompleteReply {
  status: "ok";
  matches: string[];
  cursor_start: number;
  cursor_end: number;
  metadata: Record<string, unknown>;
}

export interface InspectReply {
  status: "ok";
  found: boolean;
  data: MimeBundle;
  metadata: Record<string, unknown>;
}

export type IsCompleteReply = { status: "complete" | "invalid" | "unknown" } | { status: "incomplete"; indent: string };

export interface ReplyContents {
  kernel_info_reply: KernelInfoReply;
  execute_reply: ExecuteReply;
  complete_reply: CompleteReply;
  inspect_reply: InspectReply;
  is_complete_reply: IsCompleteReply;
  comm_info_reply: { status: "ok"; comms: Record<string, { target_name: string }> };
  history_reply: { status: "ok"; history: unknown[] };
  interrupt_reply: { status: "ok" };
  shutdown_reply: { status: "ok"; restart: boolean };
}

export interface DisplayData {
  data: MimeBundle;
  metadata: Record<string, unknown>;
  transient?: Record<string, unknown>;
}

export interface IopubContents {
  status: { execution_state: "busy" | "idle" | "starting" };
  stream: { name: "stdout" | "stderr"; text: string };
  execute_input: { code: string; execution_count: number };
  execute_result: { execution_count: number; data: MimeBundle; metadata: Record<string, unknown> };
  display_data: DisplayData;
  update_display_data: DisplayData;
  error: ErrorContent;
  comm_close: { comm_id: string; data: Record<string, unknown> };
}

/** Any iopub content as a client reads it from a kernel it does not trust: every field may be missing. */
export type IopubFields = Partial<IopubContents["stream"]> & Partial<IopubContents["execute_result"]> & Partial<ErrorContent> &
  Partial<DisplayData> & { wait?: boolean };

export type RequestType = keyof RequestContents;
/** A request as the kernel receives it, its content typed by its msg_type. */
export type Request<T extends RequestType = RequestType> = JupyterMessage<RequestContents[T]>;

export function sign(key: string, parts: (string | Buffer)[]): string {
  if (!key) return "";
  const hmac = createHmac("sha256", key);
  for (const p of parts) hmac.update(p);
  return hmac.digest("hex");
}

export function newHeader(msgType: string, session: string, username = "tslaunch"): MessageHeader {
  return {
    msg_id: randomUUID(),
    session,
    username,
    date: new Date().toISOString(),
    msg_type: msgType,
    version: PROTOCOL_VERSION,
  };
}

/** Frames for a message: identities, delimiter, signature, then the four JSON parts and buffers. */
export function encode(key: string, msg: Omit<JupyterMessage<unknown>, "buffers"> & { buffers?: Buffer[] }): Buffer[] {
  const parts = [
    JSON.stringify(msg.header),
    JSON.stringify(msg.parent_header),
    JSON.stringify(msg.metadata),
    JSON.stringify(msg.content),
  ].map((s) => Buffer.from(s, "utf8"));
  return [...msg.identities, DELIMITER, Buffer.from(sign(key, parts)), ...parts, ...(msg.buffers ?? [])];
}

/** Parses and verifies frames; throws WireError on a missing delimiter or a bad signature. */
export function decode(key: string, frames: Buffer[]): JupyterMessage {
  const at = frames.findIndex((f) => f.equals(DELIMITER));
  if (at < 0 || frames.length < at + 6) throw new WireError("message has no <IDS|MSG> delimiter or too few frames");
  const signature = frames[at + 1];
  const parts = frames.slice(at + 2, at + 6);
  if (key) {
    const expected = Buffer.from(sign(key, parts));
    if (signature.length !== expected.length || !timingSafeEqual(signature, expected)) {
      throw new WireError("message signature does not match the connection key");
    }
  }
  const [header, parent, metadata, content] = parts.map((p) => JSON.parse(p.toString("utf8")));
  return {
    identities: frames.slice(0, at),
    header,
    parent_header: parent,
    metadata,
    content,
    buffers: frames.slice(at + 6),
  };
}

/** The connection file Jupyter writes for a kernel. */
export interface ConnectionInfo {
  transport: "tcp" | "ipc";
  ip: string;
  key: string;
  signature_scheme: string;
  shell_port: number;
  iopub_port: number;
  stdin_port: number;
  control_port: number;
  hb_port: number;
  kernel_name?: string;
}

export type Channel = "shell" | "iopub" | "stdin" | "control" | "hb";

export function endpoint(info: ConnectionInfo, channel: Channel): string {
  const port = info[`${channel}_port` as const];
  // ipc transport names files "<ip>-<port>" (jupyter_client's convention).
  return info.transport === "ipc" ? `ipc://${info.ip}-${port}` : `tcp://${info.ip}:${port}`;
}

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

export interface JupyterMessage<C = Record<string, any>> {
  /** ZeroMQ routing identities (ROUTER sockets); empty for PUB/SUB. */
  identities: Buffer[];
  header: MessageHeader;
  parent_header: Partial<MessageHeader>;
  metadata: Record<string, unknown>;
  content: C;
  buffers: Buffer[];
}

export class WireError extends Error {}

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
export function encode(key: string, msg: Omit<JupyterMessage, "buffers"> & { buffers?: Buffer[] }): Buffer[] {
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

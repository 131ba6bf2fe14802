// The wire format between nodes: [header, payload, mac] as three ZeroMQ frames. The MAC is
// HMAC-SHA256 under the launch's 32-byte key over a domain tag, the header and the payload, so a
// message cannot be forged, altered, or moved to another rank, collective or position. The header's
// per-link counter only grows, so a recorded message cannot be replayed either.
import { createHmac, timingSafeEqual } from "node:crypto";

export interface FrameHeader {
  /** Sending global rank. */
  from: number;
  /** Receiving global rank. */
  to: number;
  /** Messages from `from` to `to` so far; strictly increasing. */
  counter: number;
  /** Collective sequence number. */
  seq: number;
  /** What the payload is within the collective, e.g. "arrive" or "chunk3". */
  tag: string;
}

const DOMAIN = Buffer.from("tslaunch-collectives/1\0");
const MAC_BYTES = 32;

function mac(key: Buffer, header: Buffer, payload: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32LE(header.length);
  return createHmac("sha256", key).update(DOMAIN).update(len).update(header).update(payload).digest();
}

export function sealFrame(key: Buffer, header: FrameHeader, payload: Buffer): Buffer[] {
  const h = Buffer.from(JSON.stringify([header.from, header.to, header.counter, header.seq, header.tag]));
  return [h, payload, mac(key, h, payload)];
}

/** The header and payload of a well-formed, correctly signed message; null for anything else. */
export function openFrame(key: Buffer, frames: Buffer[]): { header: FrameHeader; payload: Buffer } | null {
  if (frames.length !== 3 || frames[2].length !== MAC_BYTES || frames[0].length > 1024) return null;
  const [h, payload, got] = frames;
  if (!timingSafeEqual(mac(key, h, payload), got)) return null;
  try {
    const [from, to, counter, seq, tag] = JSON.parse(h.toString("utf8")) as unknown[];
    if (![from, to, counter, seq].every((v) => Number.isSafeInteger(v)) || typeof tag !== "string") return null;
    return { header: { from, to, counter, seq, tag } as FrameHeader, payload };
  } catch {
    return null;
  }
}

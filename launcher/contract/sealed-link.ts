// Signed messages that cannot be replayed. Every message carries a header [session, sender, seq]:
// the session names the conversation (the per-node nonce of a launch across nodes, "" inside a node,
// where each launch has its own random key), the sender names who sent it, and seq grows with every
// message that sender sends. The receiver drops a message whose signature is wrong (counted as
// forged), whose session is not the one it expects, or whose seq does not grow (counted as replayed).
//
// Frames on the wire: [header, json, binary?, mac]. The MAC is HMAC-SHA256 under the link's key over
// a domain tag and every frame with its length, so frames cannot be moved between one another.
import { createHmac, hkdfSync, createPrivateKey, createPublicKey, timingSafeEqual } from "crypto";

const DOMAIN = Buffer.from("tslaunch-link/1\0");
const MAC_BYTES = 32;
/** Larger headers are not ours: checked before any JSON is parsed. */
const MAX_HEADER_BYTES = 512;
/** Senders remembered per link (a node has a few; a channel one per worker of the launch). */
const MAX_SENDERS = 4096;

function mac(key: Buffer, frames: Buffer[]): Buffer {
  const h = createHmac("sha256", key).update(DOMAIN);
  const len = Buffer.alloc(4);
  for (const f of frames) {
    len.writeUInt32LE(f.length);
    h.update(len).update(f);
  }
  return h.digest();
}

export interface Opened<M> {
  message: M;
  binary?: Buffer;
  session: string;
  sender: string;
}

export class SealedLink<In, Out> {
  private nextSeq = 1;
  private readonly lastSeq = new Map<string, number>();
  /** Messages dropped because the signature was missing or wrong. */
  forged = 0;
  /** Correctly signed messages dropped because they were seen before or belong to another session. */
  replayed = 0;

  constructor(
    private readonly key: Buffer,
    readonly sender: string,
  ) {}

  /** The frames of one message of `session`. */
  seal(message: Out, session = "", binary?: Buffer): Buffer[] {
    const frames = [Buffer.from(JSON.stringify([session, this.sender, this.nextSeq++])), Buffer.from(JSON.stringify(message), "utf8")];
    if (binary) frames.push(binary);
    return [...frames, mac(this.key, frames)];
  }

  /**
   * The message, if it is signed with the key, belongs to a session `acceptSession` accepts, and its
   * seq is greater than the last one seen from its sender; null (and counted) otherwise.
   */
  open(frames: Buffer[], acceptSession: (session: string, sender: string) => boolean = (s) => s === ""): Opened<In> | null {
    if (frames.length < 3 || frames.length > 4 || frames[0].length > MAX_HEADER_BYTES || frames[frames.length - 1].length !== MAC_BYTES) {
      this.forged++;
      return null;
    }
    const body = frames.slice(0, -1);
    if (!timingSafeEqual(mac(this.key, body), frames[frames.length - 1])) {
      this.forged++;
      return null;
    }
    let session: unknown, sender: unknown, seq: unknown, message: In;
    try {
      [session, sender, seq] = JSON.parse(body[0].toString("utf8")) as unknown[];
      message = JSON.parse(body[1].toString("utf8")) as In;
    } catch {
      this.forged++;
      return null;
    }
    if (typeof session !== "string" || typeof sender !== "string" || !Number.isSafeInteger(seq)) {
      this.forged++;
      return null;
    }
    const key = `${session}\0${sender}`;
    if (!acceptSession(session, sender) || (seq as number) <= (this.lastSeq.get(key) ?? 0)) {
      this.replayed++;
      return null;
    }
    if (!this.lastSeq.has(key) && this.lastSeq.size >= MAX_SENDERS) this.lastSeq.delete(this.lastSeq.keys().next().value!);
    this.lastSeq.set(key, seq as number);
    return { message, binary: body[2], session, sender };
  }
}

// ---- CURVE keys from a shared secret ---------------------------------------------------------

const Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/** ZeroMQ's Z85 text form of a key (RFC 32/Z85): 4 bytes become 5 characters. */
function z85(bytes: Buffer): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 4) {
    let value = bytes.readUInt32BE(i);
    let chunk = "";
    for (let j = 0; j < 5; j++) {
      chunk = Z85[value % 85] + chunk;
      value = Math.floor(value / 85);
    }
    out += chunk;
  }
  return out;
}

/** The DER prefix of a PKCS#8 X25519 private key; the 32 key bytes follow. */
const X25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");

export interface CurveKeys {
  publicKey: string;
  secretKey: string;
}

/**
 * A CURVE server key pair that every holder of `secret` derives alike (HKDF-SHA256, then X25519):
 * clients encrypt to a server key only secret holders can know, so a peer without the secret cannot
 * even complete ZeroMQ's handshake, and everything on the wire is encrypted (CurveZMQ).
 */
export function curveKeysFromSecret(secret: Buffer, purpose: string): CurveKeys {
  const seed = Buffer.from(hkdfSync("sha256", secret, Buffer.from("tslaunch-curve/1"), Buffer.from(purpose), 32));
  const privateKey = createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, seed]), format: "der", type: "pkcs8" });
  const publicKey = createPublicKey(privateKey).export({ format: "der", type: "spki" }).subarray(-32);
  return { publicKey: z85(Buffer.from(publicKey)), secretKey: z85(seed) };
}

import { describe, expect, it } from "vitest";
import { randomBytes } from "crypto";
import { curveKeysFromSecret, SealedLink, type WorkerMessage } from "../../launcher/contract";

describe("sealed messages (worker <-> agent, node <-> store)", () => {
  const key = randomBytes(32);
  const pair = () => ({ sender: new SealedLink<WorkerMessage, WorkerMessage>(key, "rank0"), receiver: new SealedLink<WorkerMessage, WorkerMessage>(key, "agent") });

  it("round-trips a message with a binary frame, naming its session and sender", () => {
    const { sender, receiver } = pair();
    const opened = receiver.open(sender.seal({ type: "stream", name: "stdout", text: "hi\n" }, "", Buffer.from([1, 2, 3])));
    expect(opened?.message).toEqual({ type: "stream", name: "stdout", text: "hi\n" });
    expect([...opened!.binary!]).toEqual([1, 2, 3]);
    expect(opened!.sender).toBe("rank0");
  });

  it("drops (and counts) a message signed with another key, unsigned, or tampered", () => {
    const { receiver } = pair();
    expect(receiver.open(new SealedLink<WorkerMessage, WorkerMessage>(randomBytes(32), "rank0").seal({ type: "eos" }))).toBeNull();
    expect(receiver.open([Buffer.from(JSON.stringify({ type: "eos" }))])).toBeNull();
    const frames = new SealedLink<WorkerMessage, WorkerMessage>(key, "rank0").seal({ type: "stream", name: "stdout", text: "a" });
    frames[1] = Buffer.from(JSON.stringify({ type: "stream", name: "stdout", text: "b" }));
    expect(receiver.open(frames)).toBeNull();
    // Moving bytes between frames keeps the concatenation but not the per-frame lengths.
    const moved = new SealedLink<WorkerMessage, WorkerMessage>(key, "rank0").seal({ type: "eos" }, "", Buffer.from("xy"));
    const shifted = [moved[0], Buffer.concat([moved[1], moved[2].subarray(0, 1)]), moved[2].subarray(1), moved[3]];
    expect(receiver.open(shifted)).toBeNull();
    expect(receiver.forged).toBe(4);
    expect(receiver.replayed).toBe(0);
  });

  it("drops a replayed message (same sender, seq not growing) and one of another session", () => {
    const { sender, receiver } = pair();
    const first = sender.seal({ type: "eos" });
    const second = sender.seal({ type: "eos" });
    expect(receiver.open(second)).not.toBeNull();
    expect(receiver.open(second)).toBeNull(); // the same message again
    expect(receiver.open(first)).toBeNull(); // an older one
    const other = sender.seal({ type: "eos" }, "old-nonce");
    expect(receiver.open(other, (s) => s === "new-nonce")).toBeNull();
    expect(receiver.replayed).toBe(3);
    expect(receiver.open(sender.seal({ type: "eos" }))).not.toBeNull();
  });

  it("derives one CURVE key pair per secret and purpose (Z85, 40 characters)", () => {
    const a = curveKeysFromSecret(Buffer.from("s3cret"), "store");
    expect(a).toEqual(curveKeysFromSecret(Buffer.from("s3cret"), "store"));
    expect(a.publicKey).toMatch(/^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/);
    expect(a.publicKey).not.toBe(curveKeysFromSecret(Buffer.from("other"), "store").publicKey);
    expect(a.publicKey).not.toBe(curveKeysFromSecret(Buffer.from("s3cret"), "mesh").publicKey);
  });
});

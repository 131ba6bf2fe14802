import { describe, expect, it } from "vitest";
import { randomBytes } from "crypto";
import { decodeMessage, encodeMessage } from "../../launcher/contract";

describe("worker <-> agent protocol", () => {
  const key = randomBytes(32);

  it("round-trips a signed message with a binary frame", () => {
    const frames = encodeMessage(key, { type: "stream", name: "stdout", text: "hi\n" }, Buffer.from([1, 2, 3]));
    const decoded = decodeMessage(key, frames);
    expect(decoded?.message).toEqual({ type: "stream", name: "stdout", text: "hi\n" });
    expect([...decoded!.binary!]).toEqual([1, 2, 3]);
  });

  it("drops a message signed with another key", () => {
    const frames = encodeMessage(randomBytes(32), { type: "eos" });
    expect(decodeMessage(key, frames)).toBeNull();
  });

  it("drops an unsigned or tampered message", () => {
    expect(decodeMessage(key, [Buffer.from(JSON.stringify({ type: "eos" }))])).toBeNull();
    const frames = encodeMessage(key, { type: "stream", name: "stdout", text: "a" });
    frames[0] = Buffer.from(JSON.stringify({ type: "stream", name: "stdout", text: "b" }));
    expect(decodeMessage(key, frames)).toBeNull();
  });
});

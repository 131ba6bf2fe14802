import { describe, expect, it } from "vitest";
import { StreamBatcher } from "../../kernel/jupyter/stream-batcher";

describe("StreamBatcher", () => {
  it("sends one message per stream per interval, not one per write", async () => {
    const sent: [string, string][] = [];
    const b = new StreamBatcher((name, text) => sent.push([name, text]), 20);
    for (let i = 0; i < 1000; i++) b.write("stdout", `line ${i}\n`);
    expect(sent).toHaveLength(0);
    await new Promise((r) => setTimeout(r, 60));
    expect(sent).toHaveLength(1);
    expect(sent[0][1].split("\n")).toHaveLength(1001);
  });

  it("keeps stdout and stderr in the order they were written", () => {
    const sent: [string, string][] = [];
    const b = new StreamBatcher((name, text) => sent.push([name, text]));
    b.write("stdout", "a\n");
    b.write("stderr", "b\n");
    b.write("stdout", "c\n");
    b.flush();
    expect(sent).toEqual([["stdout", "a\n"], ["stderr", "b\n"], ["stdout", "c\n"]]);
  });
});

import { describe, expect, it } from "vitest";
import { OutputPacer, iopubPaceFromEnv, type OutputSink } from "../../kernel/jupyter/output-pacer";
import type { DisplayData } from "../../kernel/jupyter/wire";

type Sent = ["stream", string, string] | ["display" | "update", DisplayData];

function recorder(): { sent: Sent[]; sink: OutputSink } {
  const sent: Sent[] = [];
  return { sent, sink: { stream: (name, text) => sent.push(["stream", name, text]), display: (content, update) => sent.push([update ? "update" : "display", content]) } };
}

const display = (text: string, id?: string): DisplayData => ({ data: { "text/plain": text }, metadata: {}, ...(id ? { transient: { display_id: id } } : {}) });
const until = async (cond: () => boolean, ms = 10_000) => {
  for (const end = Date.now() + ms; !cond(); ) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe("OutputPacer", () => {
  it("sends one message per stream per interval, not one per write", async () => {
    const { sent, sink } = recorder();
    const b = new OutputPacer(sink, 20);
    for (let i = 0; i < 1000; i++) b.write("stdout", `line ${i}\n`);
    expect(sent).toHaveLength(0);
    await new Promise((r) => setTimeout(r, 60));
    expect(sent).toHaveLength(1);
    expect((sent[0][2] as string).split("\n")).toHaveLength(1001);
  });

  it("keeps stdout, stderr and displays in the order they were made", () => {
    const { sent, sink } = recorder();
    const b = new OutputPacer(sink);
    b.write("stdout", "a\n");
    b.write("stderr", "b\n");
    b.display(display("d"), false);
    b.write("stdout", "c\n");
    b.flush();
    expect(sent.map((s) => (s[0] === "stream" ? s[2] : (s[1] as DisplayData).data["text/plain"]))).toEqual(["a\n", "b\n", "d", "c\n"]);
  });

  it("paces messages: 60 displays at 100 messages/s take about half a second, none is lost, and a paced display stays behind the text before it", async () => {
    const { sent, sink } = recorder();
    const b = new OutputPacer(sink, 10, { bytes: 0, messages: 100 });
    b.write("stdout", "before\n");
    const t0 = performance.now();
    for (let i = 0; i < 60; i++) b.display(display(`d${i}`), false);
    b.write("stdout", "after\n");
    await b.drained();
    const took = performance.now() - t0;
    expect(took).toBeGreaterThan(300);
    const order = sent.map((s) => (s[0] === "stream" ? s[2] : (s[1] as DisplayData).data["text/plain"]));
    expect(order).toEqual(["before\n", ...Array.from({ length: 60 }, (_, i) => `d${i}`), "after\n"]);
  });

  it("keeps only the newest of queued updates of one display", async () => {
    const { sent, sink } = recorder();
    const b = new OutputPacer(sink, 10, { bytes: 0, messages: 8 }); // a bucket of 2 messages
    b.display(display("v0", "view"), false);
    b.display(display("x", "other"), false);
    for (let i = 1; i <= 50; i++) b.display(display(`v${i}`, "view"), true);
    await b.drained();
    expect(sent.map((s) => `${s[0]} ${(s[1] as DisplayData).data["text/plain"]}`)).toEqual(["display v0", "display x", "update v50"]);
  });

  it("cuts a line bigger than the byte budget across messages, each within the budget, and loses nothing (no character split)", async () => {
    const { sent, sink } = recorder();
    const rate = 400_000; // a bucket of 100 000 bytes
    const b = new OutputPacer(sink, 10, { bytes: rate, messages: 0 });
    const line = "€".repeat(150_000) + "x".repeat(100_000) + "\n"; // 550 000 bytes, one line
    b.write("stdout", line);
    await until(() => sent.map((s) => s[2]).join("") === line);
    expect(sent.length).toBeGreaterThan(4);
    for (const s of sent) expect(Buffer.byteLength(s[2] as string)).toBeLessThanOrEqual(rate / 4);
    expect(sent.map((s) => s[2]).join("")).not.toContain("\ufffd");
  });

  it("paces at 80 % of jupyter_server's limits under a server, not at all otherwise, and follows the env", () => {
    expect(iopubPaceFromEnv({ JPY_PARENT_PID: "1" })).toEqual({ bytes: 800_000, messages: 800 });
    expect(iopubPaceFromEnv({})).toEqual({ bytes: 0, messages: 0 });
    expect(iopubPaceFromEnv({ JPY_PARENT_PID: "1", TSLAUNCH_IOPUB_MSG_RATE_LIMIT: "0", TSLAUNCH_IOPUB_RATE_LIMIT: "5000" })).toEqual({ bytes: 5000, messages: 0 });
  });
});

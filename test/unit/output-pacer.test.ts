import { describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
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

describe("OutputPacer backlog", () => {
  it("keeps at most its memory share of a paced backlog, spills the rest to an unlinked file, says so once, and delivers everything in order", async () => {
    const { sent, sink } = recorder();
    const limit = 200_000;
    const b = new OutputPacer(sink, 5, { bytes: 1_000_000, messages: 0 }, limit);
    const lines: string[] = [];
    let peak = 0;
    for (let batch = 0; batch < 40; batch++) {
      let text = "";
      for (let i = 0; i < 2000; i++) {
        const line = `batch ${batch} line ${i} €\n`;
        lines.push(line);
        text += line;
      }
      b.write("stdout", text);
      b.flush();
      if (batch === 20) b.display(display("in the middle"), false);
      peak = Math.max(peak, b.backlogInMemory);
    }
    await b.drained();
    peak = Math.max(peak, b.backlogInMemory);
    expect(b.spilledBytes).toBeGreaterThan(1_000_000);
    expect(peak).toBeLessThanOrEqual(limit + 100_000); // one batch over the share at most
    const notices = sent.filter((s) => s[0] === "stream" && s[1] === "stderr");
    expect(notices).toHaveLength(1);
    expect(notices[0][2]).toMatch(/waits on disk .* Nothing is lost/);
    const out = sent.filter((s) => s[0] === "stream" && s[1] === "stdout").map((s) => s[2]).join("");
    expect(out).toBe(lines.join(""));
    // The display made after batch 20 comes after batch 20's lines and before batch 21's.
    const order = sent.filter((s) => s[0] !== "stream" || s[1] === "stdout").map((s) => (s[0] === "stream" ? s[2] : "<display>")).join("");
    const at = order.indexOf("<display>");
    expect(order.slice(0, at).endsWith("batch 20 line 1999 €\n")).toBe(true);
    expect(order.slice(at + "<display>".length).startsWith("batch 21 line 0 €\n")).toBe(true);
    // Nothing named after the spill file is left in TMPDIR.
    expect(fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith(`tslaunch-output-${process.pid}-`))).toEqual([]);
  }, 30_000);
});

describe("the cell's output limit", () => {
  it("reads TSLAUNCH_OUTPUT_LIMIT as bytes or a size with a unit (0: none), 4 MB by default", async () => {
    const { outputLimitFromEnv, DEFAULT_CELL_OUTPUT_LIMIT } = await import("../../kernel/launch/kernel-launch-host");
    expect(DEFAULT_CELL_OUTPUT_LIMIT).toBe(4_000_000);
    expect(outputLimitFromEnv({})).toBe(4_000_000);
    expect(outputLimitFromEnv({ TSLAUNCH_OUTPUT_LIMIT: "0" })).toBe(0);
    expect(outputLimitFromEnv({ TSLAUNCH_OUTPUT_LIMIT: "512KB" })).toBe(512_000);
    expect(outputLimitFromEnv({ TSLAUNCH_OUTPUT_LIMIT: "1.5m" })).toBe(1_500_000);
    expect(outputLimitFromEnv({ TSLAUNCH_OUTPUT_LIMIT: "123" })).toBe(123);
  });
});

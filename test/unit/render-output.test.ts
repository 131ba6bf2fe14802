import { describe, expect, it } from "vitest";
import { messageToOutput, OutputArea, renderOutput, stripAnsi } from "../../kernel/client/render-output";

/** Just enough of an iopub message for the output functions. */
function msg(msgType: string, content: Record<string, unknown>) {
  return { header: { msg_type: msgType } as any, content };
}

describe("messageToOutput", () => {
  it("converts stream, display_data, execute_result and error messages to nbformat outputs", () => {
    expect(messageToOutput(msg("stream", { name: "stderr", text: "oops\n" }))).toEqual({
      output_type: "stream",
      name: "stderr",
      text: "oops\n",
    });
    expect(
      messageToOutput(msg("display_data", { data: { "text/plain": "x" }, metadata: {}, transient: { display_id: "d" } })),
    ).toEqual({ output_type: "display_data", data: { "text/plain": "x" }, metadata: {} });
    expect(messageToOutput(msg("execute_result", { data: { "text/plain": "3" }, metadata: {}, execution_count: 4 }))).toEqual({
      output_type: "execute_result",
      execution_count: 4,
      data: { "text/plain": "3" },
      metadata: {},
    });
    expect(messageToOutput(msg("error", { ename: "E", evalue: "v", traceback: ["a", "b"] }))).toEqual({
      output_type: "error",
      ename: "E",
      evalue: "v",
      traceback: ["a", "b"],
    });
  });

  it("returns undefined for messages that are not outputs", () => {
    expect(messageToOutput(msg("status", { execution_state: "idle" }))).toBeUndefined();
    expect(messageToOutput(msg("execute_input", { code: "1", execution_count: 1 }))).toBeUndefined();
    expect(messageToOutput(msg("clear_output", { wait: false }))).toBeUndefined();
  });
});

describe("renderOutput", () => {
  it("prints stream text as it is, without adding a newline", () => {
    expect(renderOutput({ output_type: "stream", name: "stdout", text: "partial" })).toBe("partial");
    expect(renderOutput({ output_type: "stream", name: "stdout", text: ["a\n", "b\n"] })).toBe("a\nb\n");
  });

  it("prints text/plain of results and displays", () => {
    const data = { "text/plain": "Figure", "image/png": "iVBOR" };
    expect(renderOutput({ output_type: "execute_result", execution_count: 1, data, metadata: {} })).toBe("Figure\n");
    expect(renderOutput({ output_type: "display_data", data: { "text/plain": ["l1\n", "l2"] }, metadata: {} })).toBe("l1\nl2\n");
  });

  it("notes rich outputs that have no text form", () => {
    expect(renderOutput({ output_type: "display_data", data: { "image/png": "iVBOR" }, metadata: {} })).toBe(
      "[image/png output]\n",
    );
    expect(renderOutput({ output_type: "display_data", data: { "text/html": "<b>x</b>" }, metadata: {} })).toBe(
      "[text/html output]\n",
    );
  });

  it("joins traceback lines, optionally without colours", () => {
    const error = { output_type: "error" as const, ename: "E", evalue: "v", traceback: ["\u001b[31mTraceback\u001b[0m", "E: v"] };
    expect(renderOutput(error)).toBe("\u001b[31mTraceback\u001b[0m\nE: v\n");
    expect(renderOutput(error, { stripAnsi: true })).toBe("Traceback\nE: v\n");
    expect(renderOutput({ ...error, traceback: [] })).toBe("E: v\n");
  });

  it("stripAnsi removes colour and hyperlink sequences only", () => {
    expect(stripAnsi("\u001b[1;32mok\u001b[0m \u001b]8;;http://x\u0007link\u001b]8;;\u0007")).toBe("ok link");
  });
});

describe("OutputArea", () => {
  it("merges consecutive streams of the same name only", () => {
    const area = new OutputArea();
    area.handle(msg("stream", { name: "stdout", text: "a" }));
    expect(area.handle(msg("stream", { name: "stdout", text: "b\n" }))).toMatchObject({ kind: "appended", text: "b\n" });
    area.handle(msg("stream", { name: "stderr", text: "e\n" }));
    area.handle(msg("stream", { name: "stdout", text: "c\n" }));
    expect(area.outputs).toEqual([
      { output_type: "stream", name: "stdout", text: "ab\n" },
      { output_type: "stream", name: "stderr", text: "e\n" },
      { output_type: "stream", name: "stdout", text: "c\n" },
    ]);
  });

  it("clears at once, or at the next output when wait is set", () => {
    const area = new OutputArea();
    area.handle(msg("stream", { name: "stdout", text: "old\n" }));
    expect(area.handle(msg("clear_output", { wait: false })).kind).toBe("cleared");
    expect(area.outputs).toEqual([]);

    area.handle(msg("stream", { name: "stdout", text: "10%\n" }));
    area.handle(msg("clear_output", { wait: true }));
    expect(area.outputs).toHaveLength(1); // still shown until the replacement comes
    area.handle(msg("stream", { name: "stdout", text: "20%\n" }));
    expect(area.outputs).toEqual([{ output_type: "stream", name: "stdout", text: "20%\n" }]);
  });

  it("applies update_display_data to every output with that display id, across areas sharing the map", () => {
    const displays = new Map();
    const first = new OutputArea(displays);
    const second = new OutputArea(displays);
    const show = (text: string) => msg("display_data", { data: { "text/plain": text }, metadata: {}, transient: { display_id: "p" } });
    first.handle(show("0%"));
    second.handle(show("0% again"));
    const change = second.handle(
      msg("update_display_data", { data: { "text/plain": "100%" }, metadata: { m: 1 }, transient: { display_id: "p" } }),
    );
    expect(change).toMatchObject({ kind: "updated" });
    expect(first.outputs).toEqual([{ output_type: "display_data", data: { "text/plain": "100%" }, metadata: { m: 1 } }]);
    expect(second.outputs).toEqual(first.outputs);
    // An update for an id nobody showed adds nothing.
    expect(second.handle(msg("update_display_data", { data: {}, metadata: {}, transient: { display_id: "zz" } })).kind).toBe(
      "none",
    );
    expect(second.outputs).toHaveLength(1);
  });

  it("forgets display ids of cleared outputs", () => {
    const area = new OutputArea();
    area.handle(msg("display_data", { data: { "text/plain": "a" }, metadata: {}, transient: { display_id: "p" } }));
    area.handle(msg("clear_output", { wait: false }));
    expect(area.displays.size).toBe(0);
    area.handle(msg("update_display_data", { data: { "text/plain": "b" }, metadata: {}, transient: { display_id: "p" } }));
    expect(area.outputs).toEqual([]);
  });
});

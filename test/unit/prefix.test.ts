import { describe, expect, it } from "vitest";
import { LinePrefixer, renderPrefix } from "../../launcher/group";

const fields = { rank: 3, local_rank: 1, role_name: "default", node_rank: 1 };

describe("log line prefix template", () => {
  it("defaults to [rank<r>]: ", () => {
    expect(renderPrefix(null, fields)).toBe("[rank3]: ");
  });

  it("fills torch's placeholders, braced or bare", () => {
    expect(renderPrefix("[${role_name}${rank}|${local_rank}@${node_rank}] ", fields)).toBe("[default3|1@1] ");
    expect(renderPrefix("$rank: ", fields)).toBe("3: ");
  });

  it("leaves an unknown placeholder as written", () => {
    expect(renderPrefix("[${foo} ${rank}] $bar ", fields)).toBe("[${foo} 3] $bar ");
  });
});

describe("LinePrefixer", () => {
  it("prefixes every complete line and holds a partial one back", () => {
    const p = new LinePrefixer("[r0]: ");
    expect(p.push("a\nb\npart")).toBe("[r0]: a\n[r0]: b\n");
    expect(p.push("ial")).toBe("");
    expect(p.push(" line\n")).toBe("[r0]: partial line\n");
  });

  it("ends an unterminated tail with a newline at the end of the stream", () => {
    const p = new LinePrefixer("> ");
    p.push("no newline");
    expect(p.end()).toBe("> no newline\n");
    expect(p.end()).toBe("");
  });

  it("keeps empty lines, prefixed", () => {
    expect(new LinePrefixer("> ").push("\n\nx\n")).toBe("> \n> \n> x\n");
  });

  it("sends each carriage-return redraw at once, prefixed and ending in \\r (a progress bar), then the final line", () => {
    const p = new LinePrefixer("[r0]: ");
    expect(p.push("10%\r")).toBe("[r0]: 10%\r");
    expect(p.push("20%\r")).toBe("[r0]: 20%\r");
    expect(p.push("done\n")).toBe("[r0]: done\n");
    // tqdm's style: the "\r" comes first; the text after it is a redraw, not held back
    expect(p.push("\r 1/3")).toBe("[r0]:  1/3\r");
    expect(p.push("\r 2/3")).toBe("[r0]:  2/3\r");
    expect(p.push("\n")).toBe("\n");
    expect(p.push("next\n")).toBe("[r0]: next\n");
    expect(p.end()).toBe("");
  });

  it("treats \\r\\n as a newline, even split across two writes, and ends a stream that stopped on a redraw with a newline", () => {
    const p = new LinePrefixer("> ");
    expect(p.push("a\r\nb\r\n")).toBe("> a\n> b\n");
    expect(p.push("c\r")).toBe("> c\r");
    expect(p.push("\nd\n")).toBe("\n> d\n");
    expect(p.push("50%\r")).toBe("> 50%\r");
    expect(p.end()).toBe("\n");
  });
});

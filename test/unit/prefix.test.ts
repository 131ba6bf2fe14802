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
});

// What can be said of a cell's text without TypeScript: where a cell magic's body starts, and,
// while the kernel still loads TypeScript (kernel/main.ts), whether a console should run what was
// typed. jupyter console waits 1 s for is_complete and then stops asking the kernel for good, and
// loading TypeScript's parser alone can take longer than that on a busy machine.
import type { IsCompleteReply } from "../jupyter/wire";

/** A `%%launch` cell's body, and where it starts in the cell (for completion and inspection). */
export function splitMagicBody(code: string): { code: string; offset: number } {
  if (!code.startsWith("%%")) return { code, offset: 0 };
  const nl = code.indexOf("\n");
  return nl < 0 ? { code: "", offset: code.length } : { code: code.slice(nl + 1), offset: nl + 1 };
}

/** The cell has more than one line and its last line is blank (what ends a cell magic in a console). */
export function endsWithBlankLine(code: string): boolean {
  const nl = code.lastIndexOf("\n");
  return nl >= 0 && code.slice(nl + 1).trim() === "";
}

const CLOSING: Record<string, string> = { "(": ")", "[": "]", "{": "}" };

/**
 * is_complete from brackets, quotes, template literals and comments alone: incomplete while one is
 * open (indented by the open brackets), else complete. The full answer (completeness.ts) replaces it
 * as soon as the kernel has loaded.
 */
export function isCompleteWithoutParser(code: string): IsCompleteReply {
  if (code.startsWith("%%") && !endsWithBlankLine(code)) return { status: "incomplete", indent: "" };
  const body = splitMagicBody(code).code;
  // `open` holds the closers still expected; "`" marks a template literal, "}`" a ${...} inside one.
  const open: string[] = [];
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    const inTemplate = open[open.length - 1] === "`";
    if (inTemplate) {
      if (c === "\\") i++;
      else if (c === "`") open.pop();
      else if (c === "$" && body[i + 1] === "{") (open.push("}`"), i++);
      continue;
    }
    if (c === "/" && body[i + 1] === "/") {
      const nl = body.indexOf("\n", i);
      i = nl < 0 ? body.length : nl;
    } else if (c === "/" && body[i + 1] === "*") {
      const end = body.indexOf("*/", i + 2);
      if (end < 0) return { status: "incomplete", indent: "" };
      i = end + 1;
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < body.length && body[j] !== c && body[j] !== "\n") j += body[j] === "\\" ? 2 : 1;
      i = j;
    } else if (c === "`") {
      open.push("`");
    } else if (c in CLOSING) {
      open.push(CLOSING[c]);
    } else if (c === ")" || c === "]" || c === "}") {
      const expected = open.pop();
      if (expected === "}`" && c === "}") continue; // back inside the template literal
      if (expected !== c) return { status: "invalid" };
    }
  }
  const depth = open.filter((o) => o !== "`" && o !== "}`").length;
  return open.length > 0 ? { status: "incomplete", indent: "  ".repeat(depth) } : { status: "complete" };
}

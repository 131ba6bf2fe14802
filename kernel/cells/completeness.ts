// is_complete: whether a console should run what was typed or ask for another line. Needs
// TypeScript's parser and tslab's isCompleteCode, not the type checker: kernel/main.ts answers it
// with this module while the kernel proper is still loading (jupyter console waits only 1 s).
import * as ts from "@tslab/typescript-for-tslab";
import { isCompleteCode } from "tslab/dist/converter";
import type { IsCompleteReply } from "../jupyter/wire";

export function isComplete(code: string): IsCompleteReply {
  const { code: body } = splitMagicBody(code);
  const res = isCompleteCode(body);
  if (!res.completed) return { status: "incomplete", indent: res.indent ?? "" };
  // More lines cannot fix a syntax error before the end (`1 +* 2`, a stray `)`): IPython says invalid.
  if (hasSyntaxError(body)) return { status: "invalid" };
  // A cell magic, as in ipykernel, runs only after an empty line: every complete prefix of its
  // body would otherwise run at once in a console (`%%launch -n 3` + Enter, with no body).
  if (code.startsWith("%%") && !endsWithBlankLine(code)) return { status: "incomplete", indent: "" };
  return { status: "complete" };
}

/** A `%%launch` cell's body, and where it starts in the cell (for completion and inspection). */
export function splitMagicBody(code: string): { code: string; offset: number } {
  if (!code.startsWith("%%")) return { code, offset: 0 };
  const nl = code.indexOf("\n");
  return nl < 0 ? { code: "", offset: code.length } : { code: code.slice(nl + 1), offset: nl + 1 };
}

/** Whether the TypeScript parser finds a syntax error in the code (the type checker is not involved). */
function hasSyntaxError(code: string): boolean {
  const file = ts.createSourceFile("cell.ts", code, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS) as unknown as { parseDiagnostics?: unknown[] };
  return (file.parseDiagnostics?.length ?? 0) > 0;
}

/** The cell has more than one line and its last line is blank (what ends a cell magic in a console). */
function endsWithBlankLine(code: string): boolean {
  const nl = code.lastIndexOf("\n");
  return nl >= 0 && code.slice(nl + 1).trim() === "";
}

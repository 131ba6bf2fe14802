// is_complete: whether a console should run what was typed or ask for another line, from
// TypeScript's parser and tslab's isCompleteCode (cell-text.ts answers while these still load).
import * as ts from "@tslab/typescript-for-tslab";
import { isCompleteCode } from "tslab/dist/converter";
import type { IsCompleteReply } from "../jupyter/wire";
import { endsWithBlankLine, splitMagicBody } from "./cell-text";

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

/** Whether the TypeScript parser finds a syntax error in the code (the type checker is not involved). */
function hasSyntaxError(code: string): boolean {
  const file = ts.createSourceFile("cell.ts", code, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS) as unknown as { parseDiagnostics?: unknown[] };
  return (file.parseDiagnostics?.length ?? 0) > 0;
}

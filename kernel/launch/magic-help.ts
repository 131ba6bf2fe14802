// Completion and inspection of `%%launch` flags, served through complete_request/inspect_request so
// every frontend (Lab, Notebook, VS Code, console) gets them.
import { allFlagSpellings, MIXED_PRECISIONS, RDZV_BACKENDS, surfaceExample } from "../../launcher/contract";

const VALUE_CHOICES: Record<string, readonly string[]> = {
  mixed_precision: MIXED_PRECISIONS,
  rdzv_backend: RDZV_BACKENDS,
};

/** The word under the cursor on a `%%launch` line, or null when the cursor is elsewhere. */
function magicWordAt(code: string, cursor: number): { word: string; start: number; previous: string } | null {
  const lineEnd = code.indexOf("\n") < 0 ? code.length : code.indexOf("\n");
  if (!code.startsWith("%%launch") || cursor > lineEnd) return null;
  const before = code.slice(0, cursor);
  const start = Math.max(before.lastIndexOf(" "), before.lastIndexOf("=")) + 1;
  // `--flag value` and `--flag=value` both make `--flag` the word before the value.
  const previous = (before.slice(0, start).trim().split(/\s+/).pop() ?? "").replace(/=$/, "");
  let end = cursor;
  while (end < lineEnd && !/[\s=]/.test(code[end])) end++;
  return { word: code.slice(start, end), start, previous };
}

export function completeMagic(code: string, cursor: number): { matches: string[]; cursor_start: number; cursor_end: number } | null {
  const at = magicWordAt(code, cursor);
  if (!at) return null;
  const flag = at.previous.replace(/^-+/, "").replace(/-/g, "_");
  const choices = VALUE_CHOICES[flag];
  const candidates = choices && !at.word.startsWith("-") ? [...choices] : allFlagSpellings().map((f) => f.flag).concat("--help");
  return {
    matches: candidates.filter((c) => c.startsWith(at.word)),
    cursor_start: at.start,
    cursor_end: at.start + at.word.length,
  };
}

export function inspectMagic(code: string, cursor: number): string | null {
  const at = magicWordAt(code, cursor);
  if (!at) return null;
  const word = at.word.startsWith("-") ? at.word : at.previous;
  const hit = allFlagSpellings().find((f) => f.flag === word || f.flag === word.replace(/-/g, "_").replace(/^__/, "--"));
  if (!hit) return code.slice(0, cursor).trim() === "%%launch" || at.word === "%%launch" ? "%%launch [flags]: run this cell in N worker processes. See %%launch --help." : null;
  const s = hit.spec;
  return `--${s.flag}${s.short ? ` (-${s.short})` : ""} ${s.metavar}\n${s.help}\nDefault: ${JSON.stringify(s.default)}\nExample: ${surfaceExample("magic", [s])}`;
}

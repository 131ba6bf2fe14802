// Recognises a cell magic: a first line `%%name flags...`. The flags are parsed by the magic's
// own handler (for %%launch: launcher/options.ts, the one options schema).
export interface CellMagic {
  name: string;
  /** The rest of the first line, after `%%name`. */
  line: string;
  /** The cell without its first line. */
  body: string;
}

export function parseMagic(code: string): CellMagic | null {
  const m = /^%%([A-Za-z_][\w-]*)([^\n]*)(?:\n([\s\S]*))?$/.exec(code.replace(/^\s*\n/, ""));
  if (!m) return null;
  return { name: m[1], line: m[2].trim(), body: m[3] ?? "" };
}

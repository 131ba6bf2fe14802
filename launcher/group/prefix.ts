// Where a worker's line gets its prefix. torch elastic's `log_line_prefix_template` syntax:
// `${rank}`, `${local_rank}`, `${role_name}` (and our `${node_rank}`); like Python's
// Template.safe_substitute, an unknown placeholder stays as written.
import { DEFAULT_LOG_LINE_PREFIX_TEMPLATE } from "../contract";

export interface PrefixFields {
  rank: number;
  local_rank: number;
  role_name: string;
  node_rank: number;
}

export function renderPrefix(template: string | null, fields: PrefixFields): string {
  const values = fields as unknown as Record<string, string | number>;
  return (template ?? DEFAULT_LOG_LINE_PREFIX_TEMPLATE).replace(
    /\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))/g,
    (whole, braced: string | undefined, bare: string | undefined) => {
      const name = braced ?? bare!;
      return Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : whole;
    },
  );
}

/**
 * Cuts one rank's byte stream into prefixed lines. A partial line waits here until its newline (or
 * the end of the stream) so it is never glued to another rank's text.
 *
 * A carriage return redraws a line (progress bars): each redrawn state goes out at once, prefixed
 * and ending in "\r", so a frontend overwrites it in place and the prefix stays. Text after a "\r"
 * is such a redraw too and is not held back. A "\r\n" is a newline, even split across two writes.
 */
export class LinePrefixer {
  private partial = "";
  /** The last text sent ended in "\r": a "\n" that follows only ends that line. */
  private endedWithCR = false;
  /** The partial line started after a "\r": it is a redraw, sent without waiting for its end. */
  private redrawing = false;

  constructor(private readonly prefix: string) {}

  /** Returns the prefixed lines and redraws in `chunk`; keeps an unfinished ordinary line. */
  push(chunk: string): string {
    let text = this.partial + chunk;
    this.partial = "";
    let out = "";
    if (this.endedWithCR && text.startsWith("\n")) {
      out += "\n"; // the "\r\n" of the line already sent
      text = text.slice(1);
    }
    this.endedWithCR = false;
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (c === "\n") {
        out += this.prefix + text.slice(start, text[i - 1] === "\r" && i - 1 >= start ? i - 1 : i) + "\n";
        start = i + 1;
        this.redrawing = false;
      } else if (c === "\r" && text[i + 1] !== "\n") {
        const line = text.slice(start, i);
        if (line) out += this.prefix + line + "\r";
        start = i + 1;
        this.redrawing = true;
        this.endedWithCR = i + 1 === text.length && line !== "";
      }
    }
    const rest = text.slice(start);
    if (rest && this.redrawing) {
      out += this.prefix + rest + "\r";
      this.endedWithCR = true;
    } else this.partial = rest;
    return out;
  }

  /** The unterminated tail at the end of a stream, prefixed and given a newline. */
  end(): string {
    if (this.partial) {
      const out = this.prefix + this.partial + "\n";
      this.partial = "";
      return out;
    }
    if (this.endedWithCR) {
      this.endedWithCR = false;
      return "\n"; // keep the last redraw on screen, and the next output on its own line
    }
    return "";
  }
}

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
 * Cuts one rank's byte stream into prefixed whole lines. A partial line waits here until its
 * newline (or the end of the stream) so it is never glued to another rank's text.
 */
export class LinePrefixer {
  private partial = "";

  constructor(private readonly prefix: string) {}

  /** Returns the prefixed complete lines in `chunk` (with their newlines); keeps the rest. */
  push(chunk: string): string {
    const text = this.partial + chunk;
    const lastNewline = text.lastIndexOf("\n");
    if (lastNewline < 0) {
      this.partial = text;
      return "";
    }
    this.partial = text.slice(lastNewline + 1);
    return this.prefixLines(text.slice(0, lastNewline + 1));
  }

  /** The unterminated tail at the end of a stream, prefixed and given a newline. */
  end(): string {
    if (!this.partial) return "";
    const out = this.prefixLines(this.partial + "\n");
    this.partial = "";
    return out;
  }

  private prefixLines(wholeLines: string): string {
    // wholeLines ends with "\n": prefix each line start.
    const body = wholeLines.slice(0, -1);
    return this.prefix + body.split("\n").join("\n" + this.prefix) + "\n";
  }
}

// Maps lines of tslab's JavaScript output back to lines of the TypeScript cell, so that a worker's
// stack trace can say "cell [5], line 3". tslab's converter emits no source map (it transpiles twice:
// TypeScript -> ESNext -> CommonJS), so the lines are aligned by their tokens: an order-keeping
// alignment (dynamic programming) that maximises token overlap between JS lines and cell lines.

// Tokens the converter adds or removes, which say nothing about where a line came from.
const NOISE = new Set(["exports", "void", "const", "let", "var", "export", "import", "from", "as", "function", "__importStar", "__importDefault", "default", "Object", "defineProperty", "__esModule", "value", "true"]);

function tokens(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`(?:[^`\\]|\\.)*`|[A-Za-z_$][\w$]*|\d+(?:\.\d+)?/g)) {
    let t = m[0];
    if (t[0] === "'" || t[0] === "`") t = `"${t.slice(1, -1)}"`;
    if (!NOISE.has(t)) out.push(t);
  }
  return out;
}

function similarity(a: string[], b: string[]): number {
  if (a.length === 0 || b.length === 0) return 0;
  const counts = new Map<string, number>();
  for (const t of b) counts.set(t, (counts.get(t) ?? 0) + 1);
  let common = 0;
  for (const t of a) {
    const c = counts.get(t) ?? 0;
    if (c > 0) {
      common++;
      counts.set(t, c - 1);
    }
  }
  return common / Math.max(a.length, b.length);
}

/**
 * Returns, for each JavaScript line, the 1-based source line it most likely came from, plus
 * `firstSourceLine - 1` (so a `%%launch` body can count its magic line). 0 means unknown.
 */
export function alignLines(js: string, source: string, firstSourceLine = 1): number[] {
  const jsLines = js.split("\n");
  const srcLines = source.split("\n");
  const jsTokens = jsLines.map(tokens);
  const srcTokens = srcLines.map(tokens);
  // Lines of punctuation alone (a closing brace) match only a line with the same punctuation.
  const score = (j: number, s: number) =>
    jsTokens[j].length === 0 && srcTokens[s].length === 0
      ? jsLines[j].trim() !== "" && jsLines[j].trim().replace(/;$/, "") === srcLines[s].trim().replace(/;$/, "") ? 0.3 : 0
      : similarity(jsTokens[j], srcTokens[s]);
  const J = jsTokens.length;
  const S = srcTokens.length;
  // best[s + 1]: best total similarity so far where the last mapped JS line maps to source line s
  // (index 0: nothing mapped yet). A JS line maps to a later source line than the last one at full
  // similarity, or to the same one at half (the converter adds `exports.x = x;` after a line).
  let best = new Float64Array(S + 1).fill(-Infinity);
  best[0] = 0;
  const back: { from: Int32Array; mapped: Uint8Array }[] = [];
  for (let j = 0; j < J; j++) {
    const next = Float64Array.from(best); // JS line j unmapped: state unchanged
    const from = Int32Array.from({ length: S + 1 }, (_, i) => i);
    const mapped = new Uint8Array(S + 1);
    let prefixBest = best[0];
    let prefixArg = 0;
    for (let s = 0; s < S; s++) {
      const sim = score(j, s);
      if (sim > 0.2) {
        const later = prefixBest + sim;
        const same = best[s + 1] + sim / 2;
        const cand = Math.max(later, same);
        if (cand > next[s + 1]) {
          next[s + 1] = cand;
          from[s + 1] = later >= same ? prefixArg : s + 1;
          mapped[s + 1] = 1;
        }
      }
      if (best[s + 1] > prefixBest) {
        prefixBest = best[s + 1];
        prefixArg = s + 1;
      }
    }
    back.push({ from, mapped });
    best = next;
  }
  let state = 0;
  for (let i = 1; i <= S; i++) if (best[i] > best[state]) state = i;
  const mapped = new Array<number>(J).fill(0);
  for (let j = J - 1; j >= 0; j--) {
    const step = back[j];
    if (step.mapped[state]) mapped[j] = state;
    state = step.from[state];
  }
  // Lines without a match (helpers the compiler emitted, `exports.x = x;`) take the last known line.
  let last = 0;
  return mapped.map((m) => {
    if (m > 0) last = m;
    const line = m > 0 ? m : last;
    return line > 0 ? line + firstSourceLine - 1 : 0;
  });
}

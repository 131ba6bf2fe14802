/**
 * A dependency-free SVG line plot of loss curves (one line per run, e.g. per world size), as a
 * string a notebook can display. Later lines are dashed so that coinciding curves, which is the
 * expected result when comparing world sizes, stay visible on top of each other.
 */

export interface LossCurve {
  label: string;
  losses: readonly number[];
}

export interface LossCurveSvgOptions {
  width?: number;
  height?: number;
  title?: string;
  xLabel?: string;
  yLabel?: string;
}

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];
const MARGIN = { left: 64, right: 16, top: 32, bottom: 48 };

export function lossCurveSvg(input: readonly LossCurve[], options: LossCurveSvgOptions = {}): string {
  const { width = 640, height = 360, title = "Training loss", xLabel = "step", yLabel = "loss" } = options;
  // Checked at run time too: notebook cells are often loosely typed.
  if (!Array.isArray(input)) throw new TypeError("lossCurveSvg: curves must be an array of { label, losses }");
  const curves: readonly LossCurve[] = input;
  for (const [i, c] of curves.entries()) {
    if (c == null || typeof c.label !== "string" || !Array.isArray(c.losses)) {
      throw new TypeError(`lossCurveSvg: curves[${i}] must be { label: string, losses: number[] }`);
    }
  }
  if (!(width > MARGIN.left + MARGIN.right + 40) || !(height > MARGIN.top + MARGIN.bottom + 40)) {
    throw new RangeError(`lossCurveSvg: width and height are too small to plot (got ${width}x${height})`);
  }

  const plotW = width - MARGIN.left - MARGIN.right;
  const plotH = height - MARGIN.top - MARGIN.bottom;
  const maxSteps = Math.max(1, ...curves.map((c) => c.losses.length));
  const finite = curves.flatMap((c) => c.losses.filter(Number.isFinite));
  const [yMin, yMax] = yDomain(finite);
  const yTicks = niceTicks(yMin, yMax, 5);
  const y0 = Math.min(yMin, yTicks[0]);
  const y1 = Math.max(yMax, yTicks[yTicks.length - 1]);
  const xTicks = niceTicks(0, Math.max(1, maxSteps - 1), 6).filter((t) => Number.isInteger(t));
  const x1 = Math.max(1, maxSteps - 1, xTicks[xTicks.length - 1]);

  const sx = (step: number) => MARGIN.left + (step / x1) * plotW;
  const sy = (loss: number) => MARGIN.top + (1 - (loss - y0) / (y1 - y0)) * plotH;
  const n = (v: number) => (Math.round(v * 100) / 100).toString();

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
      `font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${n(width / 2)}" y="20" text-anchor="middle" font-size="14">${escapeXml(title)}</text>`,
  );
  // Grid and tick labels.
  for (const t of yTicks) {
    out.push(
      `<line x1="${MARGIN.left}" x2="${MARGIN.left + plotW}" y1="${n(sy(t))}" y2="${n(sy(t))}" stroke="#e5e5e5"/>`,
      `<text x="${MARGIN.left - 6}" y="${n(sy(t) + 4)}" text-anchor="end">${formatTick(t, yTicks)}</text>`,
    );
  }
  for (const t of xTicks) {
    out.push(
      `<line x1="${n(sx(t))}" x2="${n(sx(t))}" y1="${MARGIN.top + plotH}" y2="${MARGIN.top + plotH + 4}" stroke="black"/>`,
      `<text x="${n(sx(t))}" y="${MARGIN.top + plotH + 18}" text-anchor="middle">${t}</text>`,
    );
  }
  // Axes and their labels.
  out.push(
    `<path d="M${MARGIN.left},${MARGIN.top}V${MARGIN.top + plotH}H${MARGIN.left + plotW}" fill="none" stroke="black"/>`,
    `<text x="${n(MARGIN.left + plotW / 2)}" y="${height - 8}" text-anchor="middle">${escapeXml(xLabel)}</text>`,
    `<text transform="translate(14 ${n(MARGIN.top + plotH / 2)}) rotate(-90)" text-anchor="middle">${escapeXml(yLabel)}</text>`,
  );
  // One path per curve; a non-finite loss breaks the line instead of dragging it off the plot.
  curves.forEach((c, i) => {
    let d = "";
    let pen = false;
    c.losses.forEach((loss, step) => {
      if (!Number.isFinite(loss)) {
        pen = false;
        return;
      }
      d += `${pen ? "L" : "M"}${n(sx(step))},${n(sy(loss))}`;
      pen = true;
    });
    const dash = i === 0 ? "" : ` stroke-dasharray="${6 + 2 * i} ${4 + 2 * i}"`;
    if (d) out.push(`<path d="${d}" fill="none" stroke="${PALETTE[i % PALETTE.length]}" stroke-width="2"${dash}/>`);
  });
  // Legend, top right inside the plot.
  if (curves.length > 0) {
    const rowH = 18;
    const boxW = 24 + 7 * Math.max(...curves.map((c) => c.label.length)) + 16;
    const bx = MARGIN.left + plotW - boxW - 8;
    const by = MARGIN.top + 8;
    out.push(
      `<rect x="${n(bx)}" y="${by}" width="${n(boxW)}" height="${curves.length * rowH + 8}" fill="white" fill-opacity="0.85" stroke="#999"/>`,
    );
    curves.forEach((c, i) => {
      const ly = by + 4 + rowH * i + rowH / 2;
      const dash = i === 0 ? "" : ` stroke-dasharray="${6 + 2 * i} ${4 + 2 * i}"`;
      out.push(
        `<line x1="${n(bx + 6)}" x2="${n(bx + 26)}" y1="${n(ly)}" y2="${n(ly)}" stroke="${PALETTE[i % PALETTE.length]}" stroke-width="2"${dash}/>`,
        `<text x="${n(bx + 32)}" y="${n(ly + 4)}">${escapeXml(c.label)}</text>`,
      );
    });
  }
  out.push("</svg>");
  return out.join("\n");
}

function yDomain(values: number[]): [number, number] {
  if (values.length === 0) return [0, 1];
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  if (lo === hi) {
    const pad = Math.abs(lo) > 0 ? Math.abs(lo) * 0.1 : 1;
    return [lo - pad, hi + pad];
  }
  return [lo, hi];
}

/** Round-numbered ticks (1, 2 or 5 times a power of ten) covering [lo, hi]. */
function niceTicks(lo: number, hi: number, count: number): number[] {
  const raw = (hi - lo) / count;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw) ?? 10 * pow;
  const start = Math.floor(lo / step) * step;
  const ticks: number[] = [];
  for (let t = start; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  if (ticks[ticks.length - 1] < hi) ticks.push(Number((ticks[ticks.length - 1] + step).toPrecision(12)));
  return ticks;
}

function formatTick(t: number, ticks: number[]): string {
  const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : 1;
  const decimals = Math.max(0, Math.min(6, -Math.floor(Math.log10(step))));
  return t.toFixed(decimals);
}

function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[ch]!);
}

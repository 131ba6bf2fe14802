import { describe, expect, it } from "vitest";
import { lossCurveSvg } from "../../launcher/tfjs";

const count = (s: string, re: RegExp) => (s.match(re) ?? []).length;

describe("lossCurveSvg", () => {
  const curves = [
    { label: "1 process", losses: [2.3, 1.9, 1.2, 0.8, 0.5] },
    { label: "2 processes", losses: [2.3, 1.9, 1.2, 0.8, 0.5] },
  ];

  it("draws one line per curve, axes, ticks and a legend", () => {
    const svg = lossCurveSvg(curves, { title: "MNIST-ish" });
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith("</svg>")).toBe(true);
    expect(count(svg, /<path d="M[^"]*" fill="none" stroke="#/g)).toBe(2); // the two curves
    expect(svg).toContain(">1 process</text>");
    expect(svg).toContain(">2 processes</text>");
    expect(svg).toContain(">MNIST-ish</text>");
    expect(svg).toContain(">step</text>");
    expect(svg).toContain(">loss</text>");
    expect(svg).toContain('stroke-dasharray="8 6"'); // the second line is dashed so overlaps stay visible
    // Each curve has a point per step; values fall inside the plot area.
    const firstPath = svg.match(/<path d="(M[^"]*)" fill="none" stroke="#1f77b4"/)![1];
    const points = firstPath.slice(1).split("L").map((p) => p.split(",").map(Number));
    expect(points).toHaveLength(5);
    for (const [x, y] of points) {
      expect(x).toBeGreaterThanOrEqual(64);
      expect(x).toBeLessThanOrEqual(640 - 16);
      expect(y).toBeGreaterThanOrEqual(32);
      expect(y).toBeLessThanOrEqual(360 - 48);
    }
    expect(points.map((p) => p[1])).toEqual([...points.map((p) => p[1])].sort((a, b) => a - b)); // falling loss = rising y
  });

  it("escapes labels, breaks lines at non-finite losses, and copes with flat or empty input", () => {
    const svg = lossCurveSvg([{ label: "a<b & \"c\"", losses: [1, NaN, 1, 1] }]);
    expect(svg).toContain(">a&lt;b &amp; &quot;c&quot;</text>");
    expect(svg).not.toContain("NaN");
    const d = svg.match(/<path d="(M[^"]*)" fill="none" stroke="#1f77b4"/)![1];
    expect(count(d, /M/g)).toBe(2);
    expect(lossCurveSvg([])).toContain("</svg>");
    expect(lossCurveSvg([{ label: "empty", losses: [] }])).toContain(">empty</text>");
  });

  it("rejects malformed input with what it expects", () => {
    expect(() => lossCurveSvg({} as never)).toThrow("curves must be an array of { label, losses }");
    expect(() => lossCurveSvg([{ label: 1, losses: [] }] as never)).toThrow("curves[0] must be { label: string, losses: number[] }");
    expect(() => lossCurveSvg(curves, { width: 10 })).toThrow(/too small/);
  });
});

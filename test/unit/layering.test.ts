import { readdirSync, readFileSync } from "fs";
import path from "path";
import { describe, expect, it } from "vitest";

// The layout is a contract (docs/decisions.md, "A folder per phase"): launcher/ folders import only
// the folders below them, and nothing outside launcher/ reaches past its api/ and contract/ faces.
const ROOT = path.join(__dirname, "..", "..");
const LAUNCHER_LAYERS = ["contract", "devices", "channel", "collectives", "worker", "group", "rendezvous", "agent", "api", "cli", "tfjs", "register"];

function tsFiles(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(path.join(dir, e.name)) : e.name.endsWith(".ts") ? [path.join(dir, e.name)] : [],
  );
}

/** Relative imports (static, type-only, re-exports and literal require) of a file, resolved to repo paths. */
function importsOf(file: string): string[] {
  const src = readFileSync(path.join(ROOT, file), "utf8");
  const specs = [...src.matchAll(/(?:import|export)\s[^'"]*?from\s+["'](\.{1,2}\/[^"']+)["']|require\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g)].map((m) => m[1] ?? m[2]);
  return specs.map((s) => path.normalize(path.join(path.dirname(file), s)));
}

const layerOf = (p: string) => LAUNCHER_LAYERS.indexOf(p.split(path.sep)[1]);

describe("the layout", () => {
  it("has every launcher folder of the design, each with a face (index.ts)", () => {
    for (const layer of LAUNCHER_LAYERS) expect(tsFiles(path.join("launcher", layer))).toContain(path.join("launcher", layer, "index.ts"));
  });

  it("lets each launcher folder import only itself and the folders below it", () => {
    const wrong: string[] = [];
    for (const file of tsFiles("launcher").filter((f) => f.split(path.sep).length > 2)) {
      for (const target of importsOf(file)) {
        if (!target.startsWith("launcher" + path.sep)) wrong.push(`${file} -> ${target} (outside launcher/)`);
        else if (target !== "launcher" && layerOf(target) > layerOf(file)) wrong.push(`${file} -> ${target}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it("lets kernel/, bin/ and bench/ reach the launcher only through its faces", () => {
    const faces = ["launcher", path.join("launcher", "index"), path.join("launcher", "api"), path.join("launcher", "contract"), path.join("launcher", "cli")];
    const wrong = ["kernel", "bin", "bench"].flatMap((dir) =>
      tsFiles(dir).flatMap((file) => importsOf(file).filter((t) => t.startsWith("launcher") && !faces.includes(t)).map((t) => `${file} -> ${t}`)),
    );
    expect(wrong).toEqual([]);
  });

  it("has no import circles among the project's modules", () => {
    const files = ["kernel", "launcher", "bin", "bench"].flatMap(tsFiles);
    const resolve = (t: string) => [t + ".ts", path.join(t, "index.ts")].find((c) => files.includes(c));
    const graph = new Map(files.map((f) => [f, importsOf(f).map(resolve).filter((t): t is string => t !== undefined)]));
    const state = new Map<string, "visiting" | "done">();
    const circles: string[] = [];
    const visit = (f: string, trail: string[]) => {
      if (state.get(f) === "done") return;
      if (state.get(f) === "visiting") {
        circles.push([...trail.slice(trail.indexOf(f)), f].join(" -> "));
        return;
      }
      state.set(f, "visiting");
      for (const t of graph.get(f) ?? []) visit(t, [...trail, f]);
      state.set(f, "done");
    };
    for (const f of files) visit(f, []);
    expect(circles).toEqual([]);
  });
});

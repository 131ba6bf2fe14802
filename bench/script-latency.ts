// notebookLauncher from a plain Node script: the first launch (cold: the script's warm pool is
// empty) and warm ones (after a pause in which the pool fills), timed inside the script.
import { execFileSync } from "child_process";
import { mkdtempSync, rmSync, writeFileSync } from "fs";
import os from "os";
import path from "path";
import { REPO, stats, type Stats } from "./lib";

export interface ScriptLatencyRow {
  n: number;
  coldMs: number;
  warmMs: Stats;
}

// The pause runs in the parent only: every worker re-runs this script's top level up to its call.
const SCRIPT = (n: number, reps: number) => `
const { notebookLauncher } = require(${JSON.stringify(path.join(REPO, "dist", "launcher", "index.js"))});
const inWorker = process.env.TSLAUNCH_IN_WORKER === "1";
(async () => {
  const times = [];
  for (let i = 0; i <= ${reps}; i++) {
    if (i > 0 && !inWorker) await new Promise((r) => setTimeout(r, 500));
    const t0 = performance.now();
    await notebookLauncher(() => 1, [], { numProcesses: ${n} });
    times.push(performance.now() - t0);
  }
  if (!inWorker) console.log(JSON.stringify(times));
})();
`;

export function runScriptLatency(ns: number[], reps: number): ScriptLatencyRow[] {
  const dir = mkdtempSync(path.join(os.tmpdir(), "tsl-bench-script-"));
  try {
    return ns.map((n) => {
      const file = path.join(dir, `launch-${n}.js`);
      writeFileSync(file, SCRIPT(n, reps));
      const out = execFileSync(process.execPath, [file], { cwd: dir, encoding: "utf8", env: { ...process.env, CUDA_VISIBLE_DEVICES: "" }, timeout: 300_000 });
      const times = JSON.parse(out.trim().split("\n").pop()!) as number[];
      return { n, coldMs: times[0], warmMs: stats(times.slice(1)) };
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function scriptLatencyTable(rows: ScriptLatencyRow[], elasticWarmMedian: (n: number) => number | undefined): string {
  const f = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? "—" : x.toFixed(1));
  const lines = [
    "| N | notebookLauncher cold (empty pool) | warm min / median / max | torch elastic_launch warm | warm / elastic |",
    "| --- | --- | --- | --- | --- |",
  ];
  for (const r of rows) {
    const e = elasticWarmMedian(r.n);
    lines.push(`| ${r.n} | ${f(r.coldMs)} | ${f(r.warmMs.min)} / ${f(r.warmMs.median)} / ${f(r.warmMs.max)} | ${f(e)} | ${e ? (r.warmMs.median / e).toFixed(2) : "—"} |`);
  }
  return lines.join("\n");
}

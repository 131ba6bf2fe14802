// The device guard's cost per cell: one scan of /proc/self/maps, /proc/self/fd and require.cache,
// measured in a process that has loaded what a kernel loads (tslab's converter, zeromq). The
// target is under 2 ms a cell. No anchor exists (Accelerate checks a library flag, not the process);
// the ratio printed is against that 2 ms budget.
import { createConverter } from "tslab/dist/converter";
import "zeromq";
import { scanProcess, watchLists } from "../launcher/api";
import { DeviceGuard } from "../kernel/launch/device-guard";

export interface GuardResult {
  reps: number;
  scanMs: { min: number; median: number; p95: number; max: number };
  afterCellMs: { min: number; median: number; p95: number; max: number };
  mapsLines: number;
  openFds: number;
  cachedModules: number;
}

function stats(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return { min: s[0], median: at(0.5), p95: at(0.95), max: s[s.length - 1] };
}

export function runGuard(reps: number): GuardResult {
  const converter = createConverter({ isJS: false, isBrowser: false }); // loads TypeScript, as a kernel has
  const lists = watchLists();
  const scans: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    scanProcess(lists);
    scans.push(performance.now() - t);
  }
  const guard = new DeviceGuard();
  const cells: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    guard.afterCell(i + 1, "const x = 1;");
    cells.push(performance.now() - t);
  }
  converter.close();
  const fs = require("fs") as typeof import("fs");
  return {
    reps,
    scanMs: stats(scans),
    afterCellMs: stats(cells),
    mapsLines: fs.readFileSync("/proc/self/maps", "utf8").split("\n").length,
    openFds: fs.readdirSync("/proc/self/fd").length,
    cachedModules: Object.keys(require.cache).length,
  };
}

export function guardTables(r: GuardResult): string {
  const f = (x: number) => x.toFixed(3);
  return [
    `process: ${r.mapsLines} lines in /proc/self/maps, ${r.openFds} open fds, ${r.cachedModules} modules in require.cache; ${r.reps} reps`,
    "",
    "| what | min / median / p95 / max (ms) | median / 2 ms budget |",
    "|---|---|---|",
    `| scanProcess (maps + fd + require.cache) | ${f(r.scanMs.min)} / ${f(r.scanMs.median)} / ${f(r.scanMs.p95)} / ${f(r.scanMs.max)} | ${(r.scanMs.median / 2).toFixed(3)} |`,
    `| DeviceGuard.afterCell (what the kernel runs after a cell) | ${f(r.afterCellMs.min)} / ${f(r.afterCellMs.median)} / ${f(r.afterCellMs.p95)} / ${f(r.afterCellMs.max)} | ${(r.afterCellMs.median / 2).toFixed(3)} |`,
  ].join("\n");
}

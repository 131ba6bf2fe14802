// Where a warm launch's time goes, phase by phase: a `Launch` of this package with a warm pool, in
// this process (no kernel), its events timestamped. Beside the kernel's figure for the same N, the
// difference is the kernel's share (compiling the body once, the live view, flushing iopub).
import { Launch, optionsFromObject } from "../launcher";
import { WarmPool } from "../launcher/api";
import { stats, type Stats } from "./lib";

export interface BreakdownRow {
  n: number;
  /** ms from run() to each phase (medians over reps): folder, channel and port ready; every rank handed
   * its environment; every rank connected; every rank done; every resource released. */
  phases: Record<"world" | "allStarted" | "allRunning" | "allSucceeded" | "done", Stats>;
}

const PHASES = ["world", "allStarted", "allRunning", "allSucceeded", "done"] as const;

async function timedLaunch(n: number, pool: WarmPool): Promise<Record<(typeof PHASES)[number], number>> {
  const t0 = performance.now();
  const at: Partial<Record<(typeof PHASES)[number], number>> = {};
  const counts = { starting: 0, running: 0, succeeded: 0 };
  const launch = new Launch(
    {
      options: optionsFromObject({ numProcesses: n }), numProcesses: n, prestarted: pool,
      payload: { cwd: process.cwd(), replay: [], body: { executionCount: 1, js: "1", async: false, jsLineToCellLine: [] } },
    },
    (e) => {
      const now = performance.now() - t0;
      if (e.type === "world") at.world = now;
      if (e.type !== "state") return;
      const state = e.worker.state as keyof typeof counts;
      if (!(state in counts)) return;
      counts[state]++;
      if (counts[state] === n) at[state === "starting" ? "allStarted" : state === "running" ? "allRunning" : "allSucceeded"] = now;
    },
  );
  await launch.run();
  at.done = performance.now() - t0;
  return at as Record<(typeof PHASES)[number], number>;
}

export async function runBreakdown(ns: number[], reps: number, settleMs: number): Promise<BreakdownRow[]> {
  const rows: BreakdownRow[] = [];
  for (const n of ns) {
    const pool = new WarmPool({ max: n });
    const samples: Record<string, number>[] = [];
    try {
      for (let i = 0; i < reps; i++) {
        pool.fill(n);
        await new Promise((resolve) => setTimeout(resolve, settleMs));
        samples.push(await timedLaunch(n, pool));
      }
    } finally {
      pool.dispose();
    }
    rows.push({ n, phases: Object.fromEntries(PHASES.map((p) => [p, stats(samples.map((s) => s[p]))])) as BreakdownRow["phases"] });
  }
  return rows;
}

export function breakdownTable(rows: BreakdownRow[], kernelWarmMedian: (n: number) => number | undefined): string {
  const f = (x: number | undefined) => (x === undefined ? "—" : x.toFixed(1));
  const lines = [
    "| N | world formed (folder, channel, port) | every rank handed its launch | every rank connected | every rank done (replay, body, flush, ack) | launch ended (all released) | kernel request → reply | kernel's share |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const r of rows) {
    const k = kernelWarmMedian(r.n);
    const p = r.phases;
    lines.push(`| ${r.n} | ${f(p.world.median)} | ${f(p.allStarted.median)} | ${f(p.allRunning.median)} | ${f(p.allSucceeded.median)} | ${f(p.done.median)} | ${f(k)} | ${k === undefined ? "—" : f(k - p.done.median)} |`);
  }
  return lines.join("\n");
}

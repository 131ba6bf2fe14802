// 3. Ordinary cell round trip: `1+1`, execute_request -> execute_reply+idle, our kernel vs plain tslab
// (the kernel ours is built on). Both kernels run side by side; reps alternate between them (ours
// first in even reps, tslab first in odd ones) so load changes hit both alike.
import { kernelKinds, fmt, fmtStats, loadavg, ratio, stats, table, timeCell, type CommandLog, type KernelPool, type RunningKernel, type Stats } from "./lib";
import type { KernelClient } from "../kernel/client/kernel-client";

export interface CellOptions {
  reps: number;
  warmup: number;
}

export interface CellResult {
  options: CellOptions;
  load: number[];
  ours: Stats;
  tslab: Stats;
  ratioPerPair: Stats;
  oursRaw: number[];
  tslabRaw: number[];
  startupMs: { ours: number; tslab: number };
  firstCellMs: { ours: number; tslab: number };
  errors: string[];
}

const CODE = "1+1";

async function once(client: KernelClient, errors: string[], who: string): Promise<number> {
  const t = await timeCell(client, CODE);
  if (t.status !== "ok") errors.push(`${who}: ${t.errorText}`);
  return t.ms;
}

export async function runCell(opts: CellOptions, pool: KernelPool, log: CommandLog): Promise<CellResult> {
  log.add(`[ours vs tslab] one tslaunch and one plain tslab kernel; ${opts.warmup} warm-up + ${opts.reps} alternating reps of the cell "${CODE}"`);
  const load = loadavg();
  const kinds = kernelKinds();
  const errors: string[] = [];
  let ours: RunningKernel | undefined;
  let tslab: RunningKernel | undefined;
  try {
    ours = await pool.start(kinds.tslaunch);
    tslab = await pool.start(kinds.tslab);
    // The value must come back as an execute_result "2" from both.
    for (const k of [ours, tslab]) {
      const { outputs, reply } = await k.client.execute(CODE, { storeHistory: false });
      const text = JSON.stringify(outputs);
      if (reply.content.status !== "ok" || !text.includes('"text/plain":"2"')) errors.push(`${k.kind}: unexpected result of ${CODE}: ${text.slice(0, 200)}`);
    }
    const firstCellMs = { ours: NaN, tslab: NaN };
    for (let i = 0; i < opts.warmup; i++) {
      const a = await once(ours.client, errors, "ours");
      const b = await once(tslab.client, errors, "tslab");
      if (i === 0) Object.assign(firstCellMs, { ours: a, tslab: b });
    }
    const oursRaw: number[] = [];
    const tslabRaw: number[] = [];
    const pair: number[] = [];
    for (let i = 0; i < opts.reps; i++) {
      let a: number, b: number;
      if (i % 2 === 0) {
        a = await once(ours.client, errors, "ours");
        b = await once(tslab.client, errors, "tslab");
      } else {
        b = await once(tslab.client, errors, "tslab");
        a = await once(ours.client, errors, "ours");
      }
      oursRaw.push(a);
      tslabRaw.push(b);
      pair.push(a / b);
    }
    return {
      options: opts,
      load,
      ours: stats(oursRaw),
      tslab: stats(tslabRaw),
      ratioPerPair: stats(pair),
      oursRaw,
      tslabRaw,
      startupMs: { ours: ours.startupMs, tslab: tslab.startupMs },
      firstCellMs,
      errors,
    };
  } finally {
    if (ours) await pool.dispose(ours);
    if (tslab) await pool.dispose(tslab);
  }
}

export function cellTables(r: CellResult): string {
  const out = [
    `Cell \`${CODE}\`, execute_request -> execute_reply+idle, ms, min / median / max over ${r.options.reps} alternating reps (after ${r.options.warmup} warm-up reps each); load ${r.load.join(" ")} at start.`,
    "",
    table(
      ["kernel", "round trip (ms)", "ours / tslab (medians)", "ours / tslab per pair", "kernel start -> ready (ms, 1 sample)", "first warm-up cell (ms)"],
      [
        ["ours (tslaunch)", fmtStats(r.ours, 1, 2), fmt(ratio(r.ours.median, r.tslab.median), 2), fmtStats(r.ratioPerPair, 1, 2), fmt(r.startupMs.ours, 0), fmt(r.firstCellMs.ours, 1)],
        ["plain tslab", fmtStats(r.tslab, 1, 2), "1.00", "1.00", fmt(r.startupMs.tslab, 0), fmt(r.firstCellMs.tslab, 1)],
      ],
    ),
  ];
  if (r.errors.length) out.push("", "Errors:", ...[...new Set(r.errors)].slice(0, 10).map((e) => `* ${e}`));
  return out.join("\n");
}

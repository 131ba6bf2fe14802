// 3. Ordinary cell round trip: `1+1`, execute_request -> execute_reply+idle, our kernel vs plain tslab
// (the kernel ours is built on). Both kernels run side by side; reps alternate between them (ours
// first in even reps, tslab first in odd ones) so load changes hit both alike.
import { kernelKinds, fmt, nowMs, fmtStats, loadavg, ratio, stats, table, timeCell, type CommandLog, type KernelPool, type RunningKernel, type Stats } from "./lib";

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

async function once(kernel: RunningKernel, errors: string[], who: string): Promise<number> {
  const t = await timeCell(kernel, CODE, undefined, 30_000);
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
    // The first cell of each kernel (timed: it includes the kernel's first compile) must show 2:
    // ours as an execute_result, plain tslab prints the value as a stdout stream.
    const firstCellMs = { ours: NaN, tslab: NaN };
    for (const k of [ours, tslab]) {
      const t = nowMs();
      const { outputs, reply } = await k.client.execute(CODE, { storeHistory: false });
      firstCellMs[k.kind === "tslaunch" ? "ours" : "tslab"] = nowMs() - t;
      const text = JSON.stringify(outputs);
      if (reply.content.status !== "ok" || !(text.includes('"text/plain":"2"') || text.includes('"text":"2\\n"'))) {
        errors.push(`${k.kind}: unexpected result of ${CODE}: ${text.slice(0, 200)}`);
      }
    }
    for (let i = 0; i < opts.warmup; i++) {
      await once(ours, errors, "ours");
      await once(tslab, errors, "tslab");
    }
    const oursRaw: number[] = [];
    const tslabRaw: number[] = [];
    const pair: number[] = [];
    for (let i = 0; i < opts.reps; i++) {
      let a: number, b: number;
      if (i % 2 === 0) {
        a = await once(ours, errors, "ours");
        b = await once(tslab, errors, "tslab");
      } else {
        b = await once(tslab, errors, "tslab");
        a = await once(ours, errors, "ours");
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
      ["kernel", "round trip (ms)", "ours / tslab (medians)", "ours / tslab per pair", "kernel start -> ready (ms, 1 sample)", "first cell (ms, 1 sample)"],
      [
        ["ours (tslaunch)", fmtStats(r.ours, 1, 2), fmt(ratio(r.ours.median, r.tslab.median), 2), fmtStats(r.ratioPerPair, 1, 2), fmt(r.startupMs.ours, 0), fmt(r.firstCellMs.ours, 1)],
        ["plain tslab", fmtStats(r.tslab, 1, 2), "1.00", "1.00", fmt(r.startupMs.tslab, 0), fmt(r.firstCellMs.tslab, 1)],
      ],
    ),
  ];
  if (r.errors.length) out.push("", "Errors:", ...[...new Set(r.errors)].slice(0, 10).map((e) => `* ${e}`));
  return out.join("\n");
}

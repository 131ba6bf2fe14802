// 1. Launch latency: `%%launch -n N` with the body `1`, execute_request -> execute_reply (+ iopub idle),
// on a fresh kernel per N (first launch = cold: the warm pool is empty; then warm reps, each after a
// pause in which the pool refills), beside torch elastic_launch and ipyparallel %%px measured in the
// same run, N by N.
import { kernelKinds, nowMs, ratio, runAnchor, stats, table, fmt, fmtStats, loadavg, type Anchors, type CommandLog, type KernelPool, type Stats, timeCell } from "./lib";

export interface LatencyOptions {
  ns: number[];
  reps: number;
  ippCalls: number;
}

export interface LatencyRow {
  n: number;
  load: number[];
  /** The same launch after the 10 session cells (SESSION_CELLS), which every rank replays. */
  oursSession?: LatencyRow["ours"];
  ours: {
    kernelStartupMs: number;
    coldMs: number;
    warmMs: Stats;
    warmRaw: number[];
    statuses: string[];
    errors: string[];
  } | { error: string };
  elastic: { coldReturnMs: number; warmReturnMs: Stats; warmFirstMs: Stats; load: number[] } | { error: string };
  /** The floor for a Node launcher: anchor node/spawn.mjs, fork() of N children that import zeromq and PUSH 'ready'. */
  nodeFloor: { zmqReadyMs: Stats; zmqExitMs: Stats; load: number[] } | { error: string };
  ipp: {
    pxMs: Stats;
    pxPrintMs: Stats;
    executeMs: Stats;
    startupMs: Stats;
    allExitedMs: Stats;
    pxPrintMismatches: number;
    forceKilled: number;
    calls: number;
    load: number[];
  } | { error: string };
}

/** The pause before each warm launch, in which the kernel's warm pool (refilled when idle) gets ready. */
const WARM_POOL_SETTLE_MS = 1000;

const toMs = (s: Stats): Stats => ({ n: s.n, min: s.min * 1e3, median: s.median * 1e3, max: s.max * 1e3 });

/**
 * A session of realistic size for the workers to replay before the body: imports, helpers, classes,
 * data (what a notebook has run before its training cell).
 */
export const SESSION_CELLS: string[] = [
  `import * as fs from "fs";\nimport * as path from "path";\nimport * as os from "os";\nimport { createHash } from "crypto";`,
  `/** Splits items into n nearly equal shards. */\nfunction shard<T>(items: T[], n: number): T[][] {\n  const out: T[][] = Array.from({ length: n }, () => []);\n  items.forEach((x, i) => out[i % n].push(x));\n  return out;\n}\nfunction mean(xs: number[]): number {\n  return xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);\n}\nfunction digest(s: string): string {\n  return createHash("sha256").update(s).digest("hex").slice(0, 12);\n}`,
  `class RunningStats {\n  private n = 0;\n  private m = 0;\n  private s = 0;\n  push(x: number): void {\n    this.n++;\n    const d = x - this.m;\n    this.m += d / this.n;\n    this.s += d * (x - this.m);\n  }\n  get mean(): number { return this.m; }\n  get variance(): number { return this.n > 1 ? this.s / (this.n - 1) : 0; }\n  toString(): string { return \`n=\${this.n} mean=\${this.m.toFixed(3)} var=\${this.variance.toFixed(3)}\`; }\n}`,
  `const config = {\n  lr: 0.01, batchSize: 64, epochs: 3, seed: 42,\n  dataDir: path.join(os.tmpdir(), "bench-data"),\n  layers: [784, 128, 64, 10],\n  schedule: { warmup: 100, decay: "cosine" as const },\n};`,
  `const samples = Array.from({ length: 2000 }, (_, i) => ({ id: i, x: Math.sin(i) * 10, label: i % 10 }));\nconst byLabel = new Map<number, number[]>();\nfor (const s of samples) byLabel.set(s.label, [...(byLabel.get(s.label) ?? []), s.id]);`,
  `interface Batch { ids: number[]; xs: Float32Array; }\nclass Loader {\n  constructor(private readonly items: typeof samples, private readonly size: number) {}\n  *batches(): Generator<Batch> {\n    for (let i = 0; i < this.items.length; i += this.size) {\n      const part = this.items.slice(i, i + this.size);\n      yield { ids: part.map((p) => p.id), xs: Float32Array.from(part.map((p) => p.x)) };\n    }\n  }\n}`,
  `function cosineLr(step: number, total: number, base = config.lr): number {\n  return 0.5 * base * (1 + Math.cos((Math.PI * step) / total));\n}\nconst schedule = Array.from({ length: 100 }, (_, i) => cosineLr(i, 100));`,
  `const vocabulary = new Set("the quick brown fox jumps over the lazy dog".split(" "));\nconst index = Object.fromEntries([...vocabulary].map((w, i) => [w, i]));`,
  `function formatRow(cols: (string | number)[]): string {\n  return cols.map((c) => String(c).padStart(10)).join(" | ");\n}\nconst header = formatRow(["step", "loss", "lr"]);`,
  `const runName = \`run-\${digest(JSON.stringify(config))}\`;\nconst stats = new RunningStats();\nfor (const b of new Loader(samples, config.batchSize).batches()) stats.push(mean(Array.from(b.xs)));`,
];

async function measureOurs(pool: KernelPool, n: number, reps: number, log: CommandLog, session: string[] = []): Promise<LatencyRow["ours"]> {
  log.add(`[ours] fresh tslaunch kernel; cell \`1\`${session.length ? ` and ${session.length} session cells` : ""}; then ${reps + 1} x cell "%%launch -n ${n}\\n1" (first = cold)`);
  const kernel = await pool.start(kernelKinds().tslaunch);
  try {
    const errors: string[] = [];
    const statuses: string[] = [];
    // An ordinary cell first: the cold figure is the first *launch*, not the kernel's first compile.
    const first = await timeCell(kernel, "1");
    if (first.status !== "ok") errors.push(`warm-up cell: ${first.errorText}`);
    for (const [i, cell] of session.entries()) {
      const r = await timeCell(kernel, cell);
      if (r.status !== "ok") errors.push(`session cell ${i + 1}: ${r.errorText}`);
    }
    const code = `%%launch -n ${n}\n1`;
    const cold = await timeCell(kernel, code);
    statuses.push(cold.status);
    if (cold.errorText) errors.push(`cold: ${cold.errorText}`);
    const warm: number[] = [];
    for (let i = 0; i < reps; i++) {
      // A user's think time between cells: the kernel refills its warm pool while idle (not timed).
      await new Promise((resolve) => setTimeout(resolve, WARM_POOL_SETTLE_MS));
      const r = await timeCell(kernel, code);
      statuses.push(r.status);
      if (r.errorText) errors.push(`rep ${i}: ${r.errorText}`);
      warm.push(r.ms);
    }
    return { kernelStartupMs: kernel.startupMs, coldMs: cold.ms, warmMs: stats(warm), warmRaw: warm, statuses, errors };
  } finally {
    await pool.dispose(kernel);
  }
}

async function measureElastic(anchors: Anchors, n: number, reps: number, log: CommandLog): Promise<LatencyRow["elastic"]> {
  const load = loadavg();
  const j = await runAnchor(anchors, "py", "launch_torch.py", ["--method", "elastic", "--n", n, "--reps", reps], log, 600_000);
  return { coldReturnMs: j.cold.return * 1e3, warmReturnMs: toMs(j.warm.return), warmFirstMs: toMs(j.warm.first), load };
}

async function measureNodeFloor(anchors: Anchors, n: number, reps: number, log: CommandLog): Promise<LatencyRow["nodeFloor"]> {
  const load = loadavg();
  const j = await runAnchor(anchors, "node", "spawn.mjs", ["--reps", reps, "--ns", n, "--skip_python", "true"], log, 300_000);
  const zmq = j.fork[`zmq:${n}`];
  return { zmqReadyMs: toMs(zmq.first), zmqExitMs: toMs(zmq.exit), load };
}

async function measureIpp(anchors: Anchors, n: number, calls: number, log: CommandLog): Promise<LatencyRow["ipp"]> {
  const load = loadavg();
  const j = await runAnchor(anchors, "py", "ipp_bench.py", ["--n", n, "--startups", 1, "--calls", calls], log, 600_000);
  return {
    pxMs: toMs(j.px),
    pxPrintMs: toMs(j.px_print),
    executeMs: toMs(j.exec),
    startupMs: toMs(j.startup),
    allExitedMs: toMs(j.all_exited),
    pxPrintMismatches: j.px_print_mismatches,
    forceKilled: j.leftover_after_reap,
    calls,
    load,
  };
}

const errorOf = (err: unknown) => ({ error: err instanceof Error ? err.message : String(err) });

export async function runLatency(opts: LatencyOptions, pool: KernelPool, anchors: Anchors, log: CommandLog): Promise<LatencyRow[]> {
  const rows: LatencyRow[] = [];
  for (const n of opts.ns) {
    const t0 = nowMs();
    const load = loadavg();
    console.log(`  N=${n}: ours...`);
    const ours = await measureOurs(pool, n, opts.reps, log).catch(errorOf);
    console.log(`  N=${n}: ours, after a ${SESSION_CELLS.length}-cell session...`);
    const oursSession = await measureOurs(pool, n, opts.reps, log, SESSION_CELLS).catch(errorOf);
    console.log(`  N=${n}: torch elastic_launch...`);
    const elastic = await measureElastic(anchors, n, opts.reps, log).catch(errorOf);
    console.log(`  N=${n}: Node floor (fork + zeromq ready)...`);
    const nodeFloor = await measureNodeFloor(anchors, n, opts.reps, log).catch(errorOf);
    console.log(`  N=${n}: ipyparallel %%px...`);
    const ipp = await measureIpp(anchors, n, opts.ippCalls, log).catch(errorOf);
    rows.push({ n, load, ours, oursSession, elastic, nodeFloor, ipp });
    console.log(`  N=${n} done in ${fmt((nowMs() - t0) / 1e3)} s`);
  }
  return rows;
}

export function latencyTables(rows: LatencyRow[], reps: number): string {
  const out: string[] = [];
  const main = rows.map((r) => {
    const o = "error" in r.ours ? undefined : r.ours;
    const e = "error" in r.elastic ? undefined : r.elastic;
    const f = "error" in r.nodeFloor ? undefined : r.nodeFloor;
    const p = "error" in r.ipp ? undefined : r.ipp;
    const os = r.oursSession && !("error" in r.oursSession) ? r.oursSession : undefined;
    return [
      r.n,
      o ? fmtStats(o.warmMs) : "error",
      os ? fmtStats(os.warmMs) : "error",
      os ? fmt(os.coldMs) : "error",
      e ? fmtStats(e.warmReturnMs) : "error",
      p ? fmtStats(p.pxMs) : "error",
      f ? fmtStats(f.zmqExitMs) : "error",
      fmt(ratio(o?.warmMs.median, e?.warmReturnMs.median), 2),
      fmt(ratio(os?.warmMs.median, e?.warmReturnMs.median), 2),
      fmt(ratio(o?.warmMs.median, p?.pxMs.median), 2),
      fmt(ratio(o?.warmMs.median, f?.zmqExitMs.median), 2),
      r.load.join(" "),
    ];
  });
  out.push(
    `Warm launch latency, ms, min / median / max. Ours: \`%%launch -n N\` + body \`1\`, execute_request -> execute_reply and idle, ${reps} warm reps on a fresh kernel per N. ` +
      `torch: \`elastic_launch\` return (accelerate's notebook_launcher settings), ${reps} warm reps. ipyparallel: \`%%px x=1\` on a running cluster of N engines (engines persist between cells; no processes are started). ` +
      `Node floor: anchor \`node/spawn.mjs\`, fork() of N Node children that import zeromq and PUSH 'ready', until all exited (${reps} reps). Ratios are ours / anchor, of medians.`,
    "",
    table(
      ["N", "ours warm", `ours warm, ${SESSION_CELLS.length}-cell session`, `ours cold, ${SESSION_CELLS.length}-cell session`, "torch elastic_launch warm return", "ipyparallel %%px x=1", "Node floor: fork+zeromq ready, all exited", "ours / elastic", "ours (session) / elastic", "ours / %%px", "ours / Node floor", "load at N start"],
      main,
    ),
  );
  const cold = rows.map((r) => {
    const o = "error" in r.ours ? undefined : r.ours;
    const e = "error" in r.elastic ? undefined : r.elastic;
    const p = "error" in r.ipp ? undefined : r.ipp;
    return [
      r.n,
      o ? fmt(o.coldMs) : "error",
      e ? fmt(e.coldReturnMs) : "error",
      fmt(ratio(o?.coldMs, e?.coldReturnMs), 2),
      o ? fmt(o.kernelStartupMs) : "error",
      p ? fmtStats(p.startupMs, 1, 0) : "error",
      p ? fmtStats(p.pxPrintMs) : "error",
      p ? `${p.pxPrintMismatches} / ${p.calls}` : "—",
      e ? fmtStats(e.warmFirstMs) : "—",
      "error" in r.nodeFloor ? "—" : fmtStats(r.nodeFloor.zmqReadyMs),
    ];
  });
  out.push(
    "",
    "Cold figures and start-up (ms; single samples unless min / median / max). Ours cold = first `%%launch` after one ordinary cell in a fresh kernel; torch cold = first elastic_launch in the process (torch already imported).",
    "",
    table(
      ["N", "ours cold launch", "elastic cold return", "ours / elastic (cold)", "our kernel start -> ready", "ipp cluster start (1 start-up)", "ipp %%px print(...)", "%%px print not shown", "elastic warm: all workers' first statement", "Node floor: fork+zeromq 'ready' received"],
      cold,
    ),
  );
  const errors = rows.flatMap((r) =>
    (["ours", "elastic", "nodeFloor", "ipp"] as const).flatMap((k) => {
      const v = r[k] as { error?: string; errors?: string[] };
      if (v.error) return [`N=${r.n} ${k}: ${v.error}`];
      if (v.errors?.length) return v.errors.map((e) => `N=${r.n} ${k}: ${e}`);
      return [];
    }),
  );
  if (errors.length) out.push("", "Errors:", ...errors.map((e) => `* ${e}`));
  return out.join("\n");
}

// All-reduce bandwidth and latency of our collectives beside gloo's, measured in the same run.
//
//   node dist/bench/collectives.js [--ns 2,4] [--sizes 4KiB,1MiB,16MiB,64MiB] [--iters-scale 1] [--rounds 1]
//                                  [--no-gloo] [--tuning '{"stagingBytes":4194304}'] [--json]
//
// Ours: n real Node rank processes on one node (shared memory). gloo: the anchor script
// shared/anchors/py/collectives.py (torch.distributed, CPU, loopback TCP), same sizes and method:
// 3 warm-ups, a barrier before each timed op, per-op time = max over ranks, median over ops;
// busbw = 2(n−1)/n · bytes / time (nccl-tests). Ratio = our busbw / gloo's (> 1: we are faster).
import { fork, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { removeSegments, type Tuning } from "../launcher/api";

/** The anchor's iteration counts per size (shared/anchors/py/collectives.py). */
const ANCHOR_ITERS: Record<number, number> = { [4 << 10]: 300, [1 << 20]: 50, [16 << 20]: 12, [64 << 20]: 7 };
// Sizes the anchor does not measure get a count by size (about the same time per size).
const itersFor = (bytes: number) => ANCHOR_ITERS[bytes] ?? Math.max(7, Math.min(300, Math.round(50 * Math.sqrt((1 << 20) / bytes))));

export interface CollectivesBenchOptions {
  /** Bytes per all-reduce; default 4 KiB, 1 MiB, 16 MiB, 64 MiB (the anchor's sizes). */
  sizes?: number[];
  /** World sizes; default 2 and 4. */
  ns?: number[];
  /** Scales the anchor's iteration counts (min 5), for both sides. */
  itersScale?: number;
  /** Alternate ours and gloo this many times per n (default 1); samples are pooled across rounds. */
  rounds?: number;
  /** Run the gloo anchor too (default true; skipped with a note when torch is missing). */
  gloo?: boolean;
  /** Path of shared/anchors/py/collectives.py; default: searched upwards from here. */
  anchorScript?: string;
  python?: string;
  tuning?: Partial<Tuning>;
  log?: (line: string) => void;
}

export interface Timing {
  medianMs: number;
  minMs: number;
  maxMs: number;
  busbwGBps: number;
}

export interface CollectivesBenchRow {
  n: number;
  bytes: number;
  iters: number;
  ours: Timing;
  /** CPU time all our ranks together spent per op (ms): work plus the cost of waiting. */
  oursCpuMs: number;
  gloo?: Timing;
  /** ours.busbw / gloo.busbw */
  ratio?: number;
}

function timing(secs: number[], bytes: number, n: number): Timing {
  const s = [...secs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { medianMs: median * 1e3, minMs: s[0] * 1e3, maxMs: s[s.length - 1] * 1e3, busbwGBps: ((2 * (n - 1)) / n) * (bytes / median) / 1e9 };
}

function findAnchor(): string | undefined {
  for (let dir = __dirname; ; dir = dirname(dir)) {
    for (const cand of [join(dir, "shared/anchors/py/collectives.py"), join(dir, "../shared/anchors/py/collectives.py")]) {
      if (existsSync(cand)) return resolve(cand);
    }
    if (dirname(dir) === dir) return undefined;
  }
}

function iterCount(bytes: number, scale: number): number {
  return Math.max(5, Math.floor(itersFor(bytes) * scale));
}

/** Runs our all-reduce at world size n; returns per-op seconds (max over ranks) per size. */
async function runOurs(n: number, sizes: number[], scale: number, tuning?: Partial<Tuning>): Promise<{ results: Record<number, number[]>; cpu: Record<number, number> }> {
  const runDir = mkdtempSync(join(tmpdir(), "tslb-"));
  const segmentPrefix = `tslb-${process.pid}-${randomBytes(3).toString("hex")}`;
  const keyHex = randomBytes(32).toString("hex");
  const iters = Object.fromEntries(sizes.map((b) => [b, iterCount(b, scale)]));
  const children = [...Array(n).keys()].map((rank) =>
    fork(join(__dirname, "collectives-rank.js"), [], {
      // TSL_BENCH_NODE_ARGS: extra node flags for the ranks, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
      execArgv: process.env.TSL_BENCH_NODE_ARGS?.split(" ").filter(Boolean) ?? [],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      env: {
        ...process.env,
        TSL_BENCH_RANK: JSON.stringify({ rank, worldSize: n, ranksByNode: [[...Array(n).keys()]], runDir, segmentPrefix, keyHex, sizes, iters, tuning }),
      },
    }),
  );
  const rounds = new Map<number, string[]>();
  let results: Record<number, number[]> | undefined;
  let cpu: Record<number, number> = {};
  children.forEach((child, rank) =>
    child.on("message", (m: { round?: number; value?: string; results?: Record<number, number[]>; cpu?: Record<number, number> }) => {
      if (m.results) results = m.results;
      if (m.cpu) cpu = m.cpu;
      if (m.round === undefined) return;
      const got = rounds.get(m.round) ?? [];
      got[rank] = m.value!;
      rounds.set(m.round, got);
      if (Object.keys(got).length === n) for (const c of children) c.send({ round: m.round, all: got });
    }),
  );
  const codes = await Promise.all(children.map((c) => new Promise<number | null>((res) => c.on("exit", (code) => res(code)))));
  const leftovers = readdirSync("/dev/shm").filter((f) => f.startsWith(segmentPrefix));
  removeSegments(segmentPrefix);
  rmSync(runDir, { recursive: true, force: true });
  if (codes.some((c) => c !== 0) || !results) throw new Error(`benchmark ranks failed (exit codes ${codes.join(", ")})`);
  if (leftovers.length) throw new Error(`benchmark left ${leftovers.join(", ")} in /dev/shm`);
  return { results, cpu };
}

/** Runs the gloo anchor at world size n; per size the per-op seconds, or undefined if it cannot run. */
function runGloo(n: number, scale: number, script: string, python: string, log: (s: string) => void): Record<number, number[]> | undefined {
  const dir = mkdtempSync(join(tmpdir(), "tslb-gloo-"));
  const out = join(dir, "gloo.json");
  try {
    execFileSync(python, [script, "--n", String(n), "--iters-scale", String(scale), "--out", out], { stdio: ["ignore", "pipe", "pipe"], timeout: 600_000 });
    const parsed = JSON.parse(readFileSync(out, "utf8")) as { results: Record<string, { op: string; bytes: number; iters: number; time: { min: number; median: number; max: number } }> };
    // The anchor reports stats only; keep min/median/max as three "samples" with the right median.
    const res: Record<number, number[]> = {};
    for (const r of Object.values(parsed.results)) if (r.op === "all_reduce") res[r.bytes] = [r.time.min, r.time.median, r.time.max];
    return res;
  } catch (err) {
    log(`gloo anchor n=${n} did not run: ${(err as Error).message.split("\n")[0]}`);
    return undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function runCollectivesBench(opts: CollectivesBenchOptions = {}): Promise<CollectivesBenchRow[]> {
  const sizes = opts.sizes ?? [4 << 10, 1 << 20, 16 << 20, 64 << 20];
  const ns = opts.ns ?? [2, 4];
  const scale = opts.itersScale ?? 1;
  const log = opts.log ?? ((s: string) => console.error(s));
  const script = opts.anchorScript ?? findAnchor();
  const rows: CollectivesBenchRow[] = [];
  if (opts.gloo !== false && !script) log("gloo anchor not found (shared/anchors/py/collectives.py); gloo columns left empty");
  for (const n of ns) {
    const ours: Record<number, number[]> = {};
    const cpu: Record<number, number> = {};
    let gloo: Record<number, number[]> | undefined;
    const rounds = opts.rounds ?? 1;
    for (let round = 1; round <= rounds; round++) {
      // Ours and gloo back to back, so both see the same background load on this shared machine.
      log(`ours n=${n} (round ${round}/${rounds}) ...`);
      const mine = await runOurs(n, sizes, scale, opts.tuning);
      for (const b of sizes) {
        ours[b] = [...(ours[b] ?? []), ...mine.results[b]];
        cpu[b] = (cpu[b] ?? 0) + mine.cpu[b] / rounds;
      }
      if (opts.gloo !== false && script) {
        log(`gloo n=${n} (round ${round}/${rounds}) ...`);
        const g = runGloo(n, scale, script, opts.python ?? "/usr/bin/python3", log);
        // The anchor reports min/median/max per run: pool them, so the median is a median of medians.
        if (g) gloo = Object.fromEntries(sizes.map((b) => [b, [...(gloo?.[b] ?? []), ...(g[b] ?? [])]]));
      }
    }
    for (const bytes of sizes) {
      const row: CollectivesBenchRow = { n, bytes, iters: ours[bytes].length, ours: timing(ours[bytes], bytes, n), oursCpuMs: cpu[bytes] * 1e3 };
      if (gloo?.[bytes]) {
        row.gloo = timing(gloo[bytes], bytes, n);
        row.ratio = row.ours.busbwGBps / row.gloo.busbwGBps;
      }
      rows.push(row);
    }
  }
  return rows;
}

function size(bytes: number): string {
  return bytes >= 1 << 20 ? `${bytes / (1 << 20)} MiB` : `${bytes / 1024} KiB`;
}

export function collectivesTable(rows: CollectivesBenchRow[]): string {
  const f = (x: number | undefined, d = 3) => (x === undefined ? "—" : x.toFixed(d));
  const lines = [
    "| n | size | ours time (ms) min / median / max | ours CPU per op (ms, all ranks) | ours busbw (GB/s) | gloo time (ms) min / median / max | gloo busbw (GB/s) | ours / gloo |",
    "|---|---|---|---|---|---|---|---|",
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.n} | ${size(r.bytes)} | ${f(r.ours.minMs)} / ${f(r.ours.medianMs)} / ${f(r.ours.maxMs)} | ${f(r.oursCpuMs)} | ${f(r.ours.busbwGBps)} | ` +
        `${r.gloo ? `${f(r.gloo.minMs)} / ${f(r.gloo.medianMs)} / ${f(r.gloo.maxMs)}` : "—"} | ${f(r.gloo?.busbwGBps)} | ${r.ratio === undefined ? "—" : r.ratio.toFixed(2) + "×"} |`,
    );
  }
  return lines.join("\n");
}

function parseSize(s: string): number {
  const m = /^(\d+)(KiB|MiB)?$/.exec(s.trim());
  if (!m) throw new Error(`bad size ${s}; examples: 4KiB, 1MiB, 65536`);
  return Number(m[1]) * (m[2] === "KiB" ? 1024 : m[2] === "MiB" ? 1 << 20 : 1);
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const opt = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const tuning: Partial<Tuning> = {};
  const tuningArg = opt("--tuning");
  if (tuningArg) Object.assign(tuning, JSON.parse(tuningArg));
  runCollectivesBench({
    ns: opt("--ns")?.split(",").map(Number),
    sizes: opt("--sizes")?.split(",").map(parseSize),
    itersScale: opt("--iters-scale") ? Number(opt("--iters-scale")) : undefined,
    rounds: opt("--rounds") ? Number(opt("--rounds")) : undefined,
    gloo: !args.includes("--no-gloo"),
    tuning,
  }).then(
    (rows) => {
      console.log(collectivesTable(rows));
      if (args.includes("--json")) console.log(JSON.stringify(rows, null, 1));
    },
    (err) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}

// `--only kernel`: our kernel beside Deno's Jupyter kernel (`deno jupyter --kernel`), same run,
// same Node client, rounds alternating which kernel goes first:
//   - start: process spawn -> first kernel_info_reply (what a frontend waits for), and -> first cell result;
//     and the first cell of a notebook that was read a while first (sent 5 s after start; both
//     kernels started together, 3 rounds);
//   - round trip of `1+1` (execute_request -> execute_reply + idle), interleaved pairs, and of a cell
//     the kernel has not seen before (`1+N`, N new each time: no compile output to reuse);
//   - RSS growth of the kernel process over 20 small cells of realistic size, read twice: 1 s after
//     the warm-up cells and 1 s after the last cell, and once it has settled (idle at least 8 s,
//     then until three readings 0.5 s apart agree within 0.25 MiB, 20 s at most) at both points. The first shows
//     what is still resident right after, the second what the cells keep: V8 goes on optimizing a
//     notebook's hot code for a few seconds after a burst of cells, in zones it frees when done.
//     Then 20 more cells of the same shape (new names), settled: what each cell keeps once the
//     compiler has seen such cells (ours compiles the type checker's paths for them the first time).
// Deno comes from npm (package `deno`, its platform binary run directly), installed by this bench into
// its scratch folder, with DENO_DIR there too: nothing is written to user folders.
import { existsSync, mkdirSync, readdirSync, readFileSync } from "fs";
import path from "path";
import { KernelClient } from "../kernel/client/kernel-client";
import { startKernelProcess, type KernelProcess } from "../kernel/client/kernel-process";
import { fmt, fmtStats, loadavg, MARKER_ENV, nowMs, ratio, REPO, runCommand, stats, table, type CommandLog, type Stats } from "./lib";

export const DENO_VERSION = "2.9.6";

export interface KernelBenchOptions {
  rounds: number;
  reps: number;
  scratch: string;
  marker: string;
}

interface Side {
  kernelInfoMs: number[];
  firstResultMs: number[];
  firstAfterPauseMs: number[];
  roundTripMs: number[];
  newCellRoundTripMs: number[];
  rssGrowthMiB: number[];
  rssSettledGrowthMiB: number[];
  rssNextSettledGrowthMiB: number[];
  rssStartMiB: number[];
  rssIdleMiB: number[];
}

export interface KernelBenchResult {
  options: Omit<KernelBenchOptions, "marker" | "scratch">;
  deno: { version: string; binary: string };
  load: number[];
  ours: Record<keyof Side, Stats>;
  theirs: Record<keyof Side, Stats>;
  raw: { ours: Side; deno: Side };
  errors: string[];
}

/** Installs Deno from npm into the scratch folder; returns its platform binary. */
async function installDeno(scratch: string, log: CommandLog): Promise<string> {
  const prefix = path.join(scratch, "deno-npm");
  mkdirSync(prefix, { recursive: true });
  const argv = ["npm", "install", "--prefix", prefix, `deno@${DENO_VERSION}`, "--no-audit", "--no-fund", "--loglevel=error"];
  log.add(argv.join(" "));
  const r = await runCommand(argv, { timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`installing Deno from npm failed (${argv.join(" ")}): ${r.stderr.trim().slice(-500)}`);
  // The package's bin is a Node shim that spawns the binary from @deno/<platform>: run the binary
  // itself, so that its start and memory are Deno's alone.
  const scope = path.join(prefix, "node_modules", "@deno");
  for (const dir of existsSync(scope) ? readdirSync(scope) : []) {
    const binary = path.join(scope, dir, "deno");
    if (existsSync(binary)) return binary;
  }
  throw new Error(`npm installed deno@${DENO_VERSION} but no platform binary is in ${scope} (this platform may have none)`);
}

/** 20 small cells of realistic size; `from` numbers their names (each batch declares new ones). */
const smallCells = (from: number) => Array.from({ length: 20 }, (_, k) => k + from).map((i) =>
  [
    `interface Row${i} { id: number; name: string; score: number }`,
    `const rows${i}: Row${i}[] = Array.from({ length: 200 }, (_, j) => ({ id: j, name: "row" + j, score: (j * ${i + 1}) % 17 }));`,
    `function best${i}(rows: Row${i}[]): Row${i} { return rows.reduce((a, b) => (b.score > a.score ? b : a)); }`,
    `best${i}(rows${i}).score`,
  ].join("\n"),
);
const SMALL_CELLS = smallCells(0);

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) / 1024;
}

interface Started {
  proc: KernelProcess;
  client: KernelClient;
}

async function startOne(argv: string[], env: Record<string, string>, side: Side): Promise<Started> {
  const t0 = nowMs();
  const proc = await startKernelProcess({ argv, cwd: REPO, env });
  const client = KernelClient.forProcess(proc);
  try {
    await client.kernelInfo(60_000);
    side.kernelInfoMs.push(nowMs() - t0);
    await client.waitForReady(60_000); // iopub subscribed: execute's idle cannot be missed
    const first = await client.execute("1+1", { storeHistory: false });
    if (first.reply.content.status !== "ok") throw new Error(`1+1 failed: ${JSON.stringify(first.reply.content).slice(0, 300)}`);
    side.firstResultMs.push(nowMs() - t0);
    return { proc, client };
  } catch (err) {
    client.close();
    await proc.dispose();
    throw err;
  }
}

/** A notebook opened, read for a while, then run: the first `1+1` sent PAUSE_MS after the kernel is ready. */
const PAUSE_MS = 5000;

async function firstCellAfterPause(argv: string[], env: Record<string, string>, side: Side): Promise<void> {
  const proc = await startKernelProcess({ argv, cwd: REPO, env });
  const client = KernelClient.forProcess(proc);
  try {
    await client.kernelInfo(60_000);
    await client.waitForReady(60_000);
    await sleep(PAUSE_MS);
    const t = nowMs();
    const first = await client.execute("1+1", { storeHistory: false });
    if (first.reply.content.status !== "ok") throw new Error(`1+1 failed: ${JSON.stringify(first.reply.content).slice(0, 300)}`);
    side.firstAfterPauseMs.push(nowMs() - t);
  } finally {
    await client.shutdown({ timeoutMs: 3000 }).catch(() => undefined);
    client.close();
    await proc.dispose();
  }
}

async function stop(k: Started): Promise<void> {
  await k.client.shutdown({ timeoutMs: 3000 }).catch(() => undefined);
  k.client.close();
  await k.proc.dispose();
}

let newCells = 0;

async function roundTrip(k: Started, code = "1+1"): Promise<number> {
  const t = nowMs();
  const r = await k.client.execute(code, { storeHistory: false });
  if (r.reply.content.status !== "ok") throw new Error(`1+1 failed: ${JSON.stringify(r.reply.content).slice(0, 300)}`);
  return nowMs() - t;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * RSS of the idle kernel once it has settled: at least 8 s after its last cell (ours gives back its
 * young generation 6 s into the quiet, kernel/idle-gc.ts), and then once three readings 0.5 s apart
 * agree within 0.25 MiB (20 s at most).
 */
async function settledRssMiB(pid: number, idleSinceMs: number): Promise<number> {
  await sleep(Math.max(0, idleSinceMs + 8000 - nowMs()));
  const readings = [rssMiB(pid)];
  for (let waited = 0; waited < 12_000; waited += 500) {
    await sleep(500);
    readings.push(rssMiB(pid));
    const last3 = readings.slice(-3);
    if (last3.length === 3 && Math.max(...last3) - Math.min(...last3) < 0.25) break;
  }
  return readings[readings.length - 1];
}

async function rssGrowth(k: Started, side: Side): Promise<void> {
  // A few cells first, so that both kernels have compiled something before the first reading.
  for (let i = 0; i < 3; i++) await k.client.execute(`const warm${i} = [${i}].map((x) => x + 1); warm${i}`);
  // Readings while idle, as a notebook between cells: ours has collected its compiler's garbage by
  // then (kernel/idle-gc.ts), so growth is what the cells keep, not when V8 last collected.
  let idleSince = nowMs();
  await sleep(1000);
  const before = rssMiB(k.proc.pid);
  const settledBefore = await settledRssMiB(k.proc.pid, idleSince);
  for (const code of SMALL_CELLS) {
    const r = await k.client.execute(code);
    if (r.reply.content.status !== "ok") throw new Error(`a memory cell failed: ${JSON.stringify(r.reply.content).slice(0, 300)}`);
  }
  idleSince = nowMs();
  await sleep(1000);
  side.rssStartMiB.push(before);
  side.rssIdleMiB.push(settledBefore);
  side.rssGrowthMiB.push(rssMiB(k.proc.pid) - before);
  const settledAfter = await settledRssMiB(k.proc.pid, idleSince);
  side.rssSettledGrowthMiB.push(settledAfter - settledBefore);
  // 20 more, alike but new: what a notebook keeps per cell once the compiler has seen such cells.
  for (const code of smallCells(20)) {
    const r = await k.client.execute(code);
    if (r.reply.content.status !== "ok") throw new Error(`a memory cell failed: ${JSON.stringify(r.reply.content).slice(0, 300)}`);
  }
  side.rssNextSettledGrowthMiB.push((await settledRssMiB(k.proc.pid, nowMs())) - settledAfter);
}

export async function runKernelBench(opts: KernelBenchOptions, log: CommandLog): Promise<KernelBenchResult> {
  const binary = await installDeno(opts.scratch, log);
  const denoDir = path.join(opts.scratch, "deno-dir");
  mkdirSync(denoDir, { recursive: true });
  const oursArgv = [process.execPath, path.join(REPO, "dist", "bin", "tslaunch.js"), "kernel", "--connection-file", "{connection_file}"];
  const denoArgv = [binary, "jupyter", "--kernel", "--conn", "{connection_file}"];
  const env = { [MARKER_ENV]: opts.marker, DENO_DIR: denoDir, NO_COLOR: "1" };
  log.add(`[ours vs Deno ${DENO_VERSION}] ${opts.rounds} rounds: start both (alternating order), ${opts.reps} interleaved 1+1 pairs, 20 cells for memory`);
  const load = loadavg();
  const empty = (): Side => ({ kernelInfoMs: [], firstResultMs: [], firstAfterPauseMs: [], roundTripMs: [], newCellRoundTripMs: [], rssGrowthMiB: [], rssSettledGrowthMiB: [], rssNextSettledGrowthMiB: [], rssStartMiB: [], rssIdleMiB: [] });
  const raw = { ours: empty(), deno: empty() };
  const errors: string[] = [];
  for (let round = 0; round < opts.rounds; round++) {
    const order: ("ours" | "deno")[] = round % 2 === 0 ? ["ours", "deno"] : ["deno", "ours"];
    const started: Partial<Record<"ours" | "deno", Started>> = {};
    try {
      for (const who of order) started[who] = await startOne(who === "ours" ? oursArgv : denoArgv, env, raw[who]);
      const ours = started.ours!;
      const deno = started.deno!;
      for (let i = 0; i < 5; i++) await Promise.all([roundTrip(ours), roundTrip(deno)].map((p) => p.catch(() => 0)));
      for (let i = 0; i < opts.reps; i++) {
        for (const who of i % 2 === 0 ? order : [...order].reverse()) raw[who].roundTripMs.push(await roundTrip(started[who]!));
      }
      for (let i = 0; i < opts.reps; i++) {
        const code = `1+${++newCells}`;
        for (const who of i % 2 === 0 ? order : [...order].reverse()) raw[who].newCellRoundTripMs.push(await roundTrip(started[who]!, code));
      }
      for (const who of order) await rssGrowth(started[who]!, raw[who]);
    } catch (err) {
      errors.push(`round ${round + 1}: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      for (const who of order) if (started[who]) await stop(started[who]!);
    }
  }
  // Both kernels side by side, after their pause: ours loads in the background meanwhile.
  for (let round = 0; round < Math.min(3, opts.rounds); round++) {
    try {
      await Promise.all([firstCellAfterPause(oursArgv, env, raw.ours), firstCellAfterPause(denoArgv, env, raw.deno)]);
    } catch (err) {
      errors.push(`first cell after a pause, round ${round + 1}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  const summarize = (side: Side) => Object.fromEntries(Object.entries(side).map(([k, v]) => [k, stats(v)])) as Record<keyof Side, Stats>;
  return { options: { rounds: opts.rounds, reps: opts.reps }, deno: { version: DENO_VERSION, binary }, load, ours: summarize(raw.ours), theirs: summarize(raw.deno), raw, errors };
}

export function kernelBenchTable(r: KernelBenchResult): string {
  const row = (what: string, key: keyof Side, digits: number, goal: string) => [
    what, fmtStats(r.ours[key], 1, digits), fmtStats(r.theirs[key], 1, digits), fmt(ratio(r.ours[key].median, r.theirs[key].median), 2), goal,
  ];
  const out = [
    `Our kernel beside Deno ${r.deno.version}'s (\`deno jupyter --kernel\`, from npm), same Node client, ${r.options.rounds} rounds alternating which starts first; min / median / max. Load ${r.load.join(" ")} at start.`,
    "",
    table(
      ["measure", "ours", "Deno", "ours / Deno (medians)", "goal"],
      [
        row("spawn -> first kernel_info_reply (ms)", "kernelInfoMs", 0, "<= 1.5"),
        row("spawn -> first `1+1` result (ms)", "firstResultMs", 0, "-"),
        row(`first \`1+1\`, sent ${PAUSE_MS / 1000} s after start (ms)`, "firstAfterPauseMs", 0, "-"),
        row(`\`1+1\` round trip (ms, ${r.options.reps} interleaved pairs per round)`, "roundTripMs", 2, "<= 1.2"),
        row("round trip of a cell not seen before (`1+N`, ms)", "newCellRoundTripMs", 2, "-"),
        row("RSS 1 s after 3 warm-up cells (MiB)", "rssStartMiB", 0, "-"),
        row("RSS after 3 warm-up cells, settled (MiB)", "rssIdleMiB", 0, "-"),
        row("RSS growth over 20 cells, 1 s after the last (MiB)", "rssGrowthMiB", 1, "-"),
        row("RSS growth over 20 cells, settled (MiB)", "rssSettledGrowthMiB", 1, "<= 1.0"),
        row("RSS growth over the next 20 such cells, settled (MiB)", "rssNextSettledGrowthMiB", 1, "-"),
      ],
    ),
  ];
  if (r.errors.length) out.push("", "Errors:", ...r.errors.map((e) => `* ${e}`));
  return out.join("\n");
}

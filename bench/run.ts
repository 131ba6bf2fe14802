// `npm run bench [-- options]`: our figures beside the anchor benchmarks (../shared/anchors), measured
// in the same run, as ratios. Prints markdown tables and writes bench/results/<stamp>.json.
//
//   --only latency|logs|cell|guard|collectives|rendezvous|kernel  one section (repeatable, or comma-separated); default: all
//   --coll-rounds N            ours/gloo alternations per world size (collectives; default 2, quick 1)
//   --reps N                   warm launches per N (latency) and interleaved rounds (logs); default 7 / 5 (quick 5 / 3)
//   --quick                    a short run: N = 1, 4; 10 000 lines; fewer reps
//   --ns 1,2,4,8               launch sizes (latency)          --lines L     lines per rank (logs; default 50 000)
//   --log-ranks N              ranks in the log test (4)       --cell-reps N reps of the `1+1` cell (default 100; quick 30)
//   --ipp-calls N              %%px calls per N (default 10)   --anchors DIR the anchor folder (default ../shared/anchors)
//   --out FILE                 the JSON file (default bench/results/<stamp>.json)
//   --kernel-env KEY=VALUE     extra environment for our kernel (repeatable). Note: the Node client sets
//                              JPY_PARENT_PID, as jupyter_client does, so the kernel believes a Jupyter
//                              client started it.
import { execFileSync } from "child_process";
import { mkdirSync, rmSync, writeFileSync } from "fs";
import os from "os";
import path from "path";
import { randomBytes } from "crypto";
import { cellTables, runCell, type CellResult } from "./cell";
import {
  CommandLog,
  KernelPool,
  REPO,
  loadavg,
  makeScratch,
  nowMs,
  prepareAnchors,
  stopRunningChildren,
  tmpLeftovers,
  uptimeLine,
  waitForNoMarkedProcesses,
  type Anchors,
} from "./lib";
import { latencyTables, runLatency, type LatencyRow } from "./latency";
import { logsTables, runLogs, type LogsResult } from "./logs";
import { guardTables, runGuard } from "./guard";
import { collectivesTable, runCollectivesBench } from "./collectives";
import { breakdownTable, runBreakdown } from "./breakdown";
import { runScriptLatency, scriptLatencyTable } from "./script-latency";
import { rendezvousTable, runRendezvous } from "./rendezvous";
import { kernelBenchTable, runKernelBench } from "./kernel";

type Section = "latency" | "logs" | "cell" | "guard" | "collectives" | "rendezvous" | "kernel";
const SECTIONS: Section[] = ["latency", "logs", "cell", "guard", "collectives", "rendezvous", "kernel"];

interface Options {
  only: Section[];
  quick: boolean;
  reps: number;
  ns: number[];
  lines: number;
  logRanks: number;
  cellReps: number;
  ippCalls: number;
  anchors?: string;
  out?: string;
  kernelEnv: Record<string, string>;
  collRounds: number;
}

function usage(message?: string): never {
  if (message) console.error(`bench: ${message}`);
  console.error(
    "usage: npm run bench -- [--quick] [--only latency|logs|cell|guard|collectives|rendezvous|kernel] [--coll-rounds N] [--reps N] [--ns 1,2,4,8] [--lines L] [--log-ranks N] [--cell-reps N] [--ipp-calls N] [--anchors DIR] [--out FILE] [--kernel-env KEY=VALUE]...",
  );
  process.exit(message ? 2 : 0);
}

function positive(flag: string, v: string | undefined): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) usage(`${flag} needs a positive integer, got ${JSON.stringify(v)}`);
  return n;
}

function parseOptions(argv: string[]): Options {
  const quick = argv.includes("--quick");
  const o: Options = {
    only: [],
    quick,
    reps: 0,
    ns: quick ? [1, 4] : [1, 2, 4, 8],
    lines: quick ? 10_000 : 50_000,
    logRanks: 4,
    cellReps: quick ? 30 : 100,
    ippCalls: quick ? 5 : 10,
    kernelEnv: {},
    collRounds: quick ? 1 : 2,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [flag, inline] = a.includes("=") ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)] : [a, undefined];
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case "--quick":
        break;
      case "--only":
        for (const s of String(value()).split(",")) {
          if (!SECTIONS.includes(s as Section)) usage(`--only takes ${SECTIONS.join("|")}, got ${JSON.stringify(s)}`);
          o.only.push(s as Section);
        }
        break;
      case "--reps":
        o.reps = positive(flag, value());
        break;
      case "--ns":
        o.ns = String(value()).split(",").map((x) => positive(flag, x));
        break;
      case "--lines":
        o.lines = positive(flag, value());
        break;
      case "--log-ranks":
        o.logRanks = positive(flag, value());
        break;
      case "--cell-reps":
        o.cellReps = positive(flag, value());
        break;
      case "--ipp-calls":
        o.ippCalls = positive(flag, value());
        break;
      case "--coll-rounds":
        o.collRounds = positive(flag, value());
        break;
      case "--anchors":
        o.anchors = path.resolve(String(value()));
        break;
      case "--kernel-env": {
        const kv = String(value());
        const eq = kv.indexOf("=");
        if (eq < 1) usage(`--kernel-env takes KEY=VALUE, got ${JSON.stringify(kv)}`);
        o.kernelEnv[kv.slice(0, eq)] = kv.slice(eq + 1);
        break;
      }
      case "--out":
        o.out = path.resolve(String(value()));
        break;
      case "-h":
      case "--help":
        usage();
      // eslint-disable-next-line no-fallthrough
      default:
        usage(`unknown argument ${JSON.stringify(a)}`);
    }
  }
  if (o.only.length === 0) o.only = [...SECTIONS];
  return o;
}

/** Why `python` cannot import `module` (null when it can). */
function pythonCannotImport(python: string, module: string): string | null {
  try {
    execFileSync(python, ["-c", `import ${module}`], { stdio: ["ignore", "ignore", "pipe"] });
    return null;
  } catch (err) {
    return `${python} cannot import ${module} (Debian: apt-get install python3-torch): ${String((err as { stderr?: Buffer }).stderr ?? err).trim().split("\n").pop()}`;
  }
}

/** The commit, and the product files that differ from it (this tree is often mid-edit). */
function gitDescribe(): { commit?: string; dirty?: boolean; changedProductFiles?: string[] } {
  try {
    const commit = execFileSync("git", ["rev-parse", "HEAD"], { cwd: REPO, encoding: "utf8" }).trim();
    const status = execFileSync("git", ["status", "--porcelain", "--", "kernel", "launcher", "bin"], { cwd: REPO, encoding: "utf8" });
    const changedProductFiles = status.split("\n").filter(Boolean).map((l) => l.slice(3));
    return { commit, dirty: changedProductFiles.length > 0, changedProductFiles };
  } catch {
    return {};
  }
}

function uptimeCommand(): string {
  try {
    return execFileSync("uptime", { encoding: "utf8" }).trim();
  } catch {
    return uptimeLine();
  }
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const latencyReps = o.reps || (o.quick ? 5 : 7);
  const logRounds = o.reps || (o.quick ? 3 : 5);
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
  const t0 = nowMs();
  const uptimeStart = uptimeCommand();

  const scratch = makeScratch();
  // Everything we and our children create in TMPDIR lands in the scratch folder and goes with it.
  process.env.TMPDIR = scratch.tmp;
  const marker = randomBytes(8).toString("hex");
  const pool = new KernelPool(marker, REPO, o.kernelEnv);
  const log = new CommandLog();

  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    stopRunningChildren();
    await pool.disposeAll();
    rmSync(scratch.dir, { recursive: true, force: true });
  };

  const result: {
    stamp: string;
    options: Options & { latencyReps: number; logRounds: number };
    env: Record<string, unknown>;
    anchors?: Omit<Anchors, "dir"> & { copy: string };
    latency?: LatencyRow[];
    logs?: LogsResult;
    cell?: CellResult;
    commands: CommandLog["entries"];
    cleanup?: Record<string, unknown>;
    wallS?: number;
    errors: string[];
  } = {
    stamp,
    options: { ...o, latencyReps, logRounds },
    env: {
      uptimeStart,
      loadavgStart: loadavg(),
      node: process.version,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      memGiB: Math.round(os.totalmem() / 2 ** 30),
      platform: `${os.platform()} ${os.release()}`,
      git: gitDescribe(),
    },
    commands: log.entries,
    errors: [],
  };
  const markdown: string[] = [];
  const outFile = o.out ?? path.join(REPO, "bench", "results", `${stamp}.json`);
  const writeJson = () => {
    mkdirSync(path.dirname(outFile), { recursive: true });
    writeFileSync(outFile, JSON.stringify(result, null, 1));
  };

  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(sig, () => {
      console.error(`\nbench: ${sig}: stopping kernels and anchor scripts, removing ${scratch.dir}`);
      void cleanup().finally(() => {
        // The sections finished so far, and every command started, for the record.
        result.errors.push(`interrupted by ${sig}`);
        result.env.uptimeEnd = uptimeCommand();
        writeJson();
        console.error(`bench: partial results in ${path.relative(process.cwd(), outFile)}`);
        process.exit(130);
      });
    });
  }

  const git = result.env.git as ReturnType<typeof gitDescribe>;
  console.log(`# tslaunch benchmarks vs anchors (${stamp}${o.quick ? ", quick" : ""})\n`);
  console.log(`uptime at start: ${uptimeStart}`);
  console.log(`machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? "?"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`);
  console.log(`git: ${git.commit?.slice(0, 10) ?? "?"}${git.changedProductFiles?.length ? ` + uncommitted changes in ${git.changedProductFiles.join(", ")}` : ""}`);
  if (Object.keys(o.kernelEnv).length) console.log(`extra environment for our kernel: ${JSON.stringify(o.kernelEnv)}`);
  console.log(`sections: ${o.only.join(", ")}; scratch ${scratch.dir}\n`);

  try {
    const anchors = await prepareAnchors(scratch.dir, o.anchors);
    result.anchors = { ...anchors, copy: anchors.dir };
    console.log(`anchors: ${anchors.source} copied to ${anchors.dir}; node_modules: ${anchors.nodeModules || "-"}`);
    for (const p of [anchors.pythonProblem, anchors.nodeProblem]) if (p) console.log(`  warning: ${p}`);
    console.log();

    // A section that fails is reported; the next one still runs.
    const section = async (name: Section, body: () => Promise<void>) => {
      if (!o.only.includes(name)) return;
      try {
        await body();
      } catch (err) {
        const message = `${name}: ${err instanceof Error ? err.stack ?? err.message : String(err)}`;
        result.errors.push(message);
        console.error(`bench: ${message}`);
        markdown.push(`## ${name}\n\nfailed: ${message}`);
        process.exitCode = 1;
      }
    };
    await section("latency", async () => {
      console.log(`## 1. Launch latency (N = ${o.ns.join(", ")}; ${latencyReps} warm reps; load ${loadavg().join(" ")})`);
      result.latency = await runLatency({ ns: o.ns, reps: latencyReps, ippCalls: o.ippCalls }, pool, anchors, log);
      markdown.push(`## 1. Launch latency\n\n${latencyTables(result.latency, latencyReps)}`);
      // Where a warm launch's time goes (the same launch in this process, no kernel), ms, medians.
      const breakdown = await runBreakdown(o.ns, latencyReps, 1000);
      (result as Record<string, unknown>).breakdown = breakdown;
      const kernelWarm = (n: number) => {
        const row = result.latency?.find((r) => r.n === n);
        return row && !("error" in row.ours) ? row.ours.warmMs.median : undefined;
      };
      markdown.push(`### Warm launch, phase by phase (ms from the start, medians of ${latencyReps})\n\n${breakdownTable(breakdown, kernelWarm)}`);
      console.log(`  notebookLauncher from a script (N = ${o.ns.join(", ")})...`);
      const scripts = runScriptLatency(o.ns, latencyReps);
      (result as Record<string, unknown>).scriptLatency = scripts;
      const elasticWarm = (n: number) => {
        const row = result.latency?.find((r) => r.n === n);
        return row && !("error" in row.elastic) ? row.elastic.warmReturnMs.median : undefined;
      };
      markdown.push(`### notebookLauncher from a plain script (ms; body \`() => 1\`; ${latencyReps} warm launches, each after a 500 ms pause)\n\n${scriptLatencyTable(scripts, elasticWarm)}`);
    });
    await section("rendezvous", async () => {
      console.log(`\n## Rendezvous across nodes (etcd and c10d, 2 and 4 nodes on loopback; load ${loadavg().join(" ")})`);
      const rows = await runRendezvous([2, 4], o.reps || 5);
      (result as Record<string, unknown>).rendezvous = rows;
      const table = rendezvousTable(rows);
      console.log(table);
      markdown.push(`## Rendezvous across nodes\n\nFrom Launch.run() on node 0, agents (\`tslaunch agent\`, 1 rank each) already waiting; loopback.\n\n${table}`);
    });
    await section("kernel", async () => {
      console.log(`\n## Kernel start, round trip and memory beside Deno's kernel (load ${loadavg().join(" ")})`);
      const r = await runKernelBench({ rounds: o.reps || (o.quick ? 3 : 5), reps: o.quick ? 20 : 50, scratch: scratch.dir, marker }, log);
      (result as Record<string, unknown>).kernel = r;
      const table = kernelBenchTable(r);
      console.log(table);
      markdown.push(`## Kernel beside Deno\n\n${table}`);
      if (r.errors.length) process.exitCode = 1;
    });
    await section("logs", async () => {
      console.log(`\n## 2. Log throughput (${o.logRanks} ranks x ${o.lines} lines, ${logRounds} rounds; load ${loadavg().join(" ")})`);
      result.logs = await runLogs({ n: o.logRanks, lines: o.lines, rounds: logRounds }, pool, anchors, log);
      markdown.push(`## 2. Log throughput\n\n${logsTables(result.logs)}`);
    });
    await section("cell", async () => {
      console.log(`\n## 3. Ordinary cell round trip (${o.cellReps} reps; load ${loadavg().join(" ")})`);
      result.cell = await runCell({ reps: o.cellReps, warmup: 5 }, pool, log);
      markdown.push(`## 3. Ordinary cell round trip\n\n${cellTables(result.cell)}`);
    });
    await section("guard", async () => {
      console.log(`\n## 4. Device guard cost per cell (load ${loadavg().join(" ")})`);
      const guard = runGuard(o.quick ? 200 : 1000);
      (result as Record<string, unknown>).guard = guard;
      console.log(guardTables(guard));
      markdown.push(`## 4. Device guard cost per cell\n\n${guardTables(guard)}`);
    });
    await section("collectives", async () => {
      console.log(`\n## 5. All-reduce (float32 sum) beside gloo (n = 2, 4; ${o.collRounds} rounds; load ${loadavg().join(" ")})`);
      // gloo needs torch alone (the other Python anchors also need ipyparallel and pyzmq).
      const torchProblem = pythonCannotImport(anchors.python, "torch.distributed");
      if (torchProblem) console.log(`  warning: no gloo columns: ${torchProblem}`);
      const rows = await runCollectivesBench({
        ns: [2, 4], rounds: o.collRounds, itersScale: o.quick ? 0.3 : 1, python: anchors.python,
        anchorScript: path.join(anchors.dir, "py", "collectives.py"), gloo: !torchProblem,
        log: (line) => console.log(`  ${line}`),
      });
      (result as Record<string, unknown>).collectives = rows;
      console.log(collectivesTable(rows));
      markdown.push(`## 5. All-reduce beside gloo\n\nbusbw = 2(n-1)/n · bytes / time; ours / gloo > 1: we are faster.\n\n${collectivesTable(rows)}`);
    });
  } catch (err) {
    const message = err instanceof Error ? err.stack ?? err.message : String(err);
    result.errors.push(message);
    console.error(`bench: ${message}`);
    process.exitCode = 1;
  } finally {
    await pool.disposeAll();
    const marked = await waitForNoMarkedProcesses(marker, 5000);
    const tmpLeft = tmpLeftovers(scratch.tmp);
    await cleanup();
    result.cleanup = {
      kernelsStarted: pool.pids.length,
      processesLeft: marked,
      tmpEntriesLeft: tmpLeft,
      scratchRemoved: scratch.dir,
    };
    if (marked.length) {
      result.errors.push(`processes left behind: ${marked.map((p) => `${p.pid} ${p.cmdline}`).join("; ")}`);
      process.exitCode = 1;
    }
    if (tmpLeft.length) result.errors.push(`temp entries left behind (removed with the scratch folder): ${tmpLeft.join(", ")}`);
  }

  result.wallS = Math.round((nowMs() - t0) / 100) / 10;
  const uptimeEnd = uptimeCommand();
  result.env.uptimeEnd = uptimeEnd;
  writeJson();

  console.log(`\n# Results (${stamp})\n`);
  console.log(`uptime at start: \`${uptimeStart}\`; at end: \`${uptimeEnd}\`; wall ${result.wallS} s; ${os.cpus().length} CPUs.`);
  console.log(
    `Product: git ${git.commit?.slice(0, 10) ?? "?"}${git.changedProductFiles?.length ? ` + uncommitted changes in ${git.changedProductFiles.join(", ")}` : ""}` +
      `${Object.keys(o.kernelEnv).length ? `; our kernel's extra environment ${JSON.stringify(o.kernelEnv)}` : ""}.`,
  );
  console.log("Ratios are ours / anchor: below 1 = we are faster (latency) / slower (throughput).\n");
  console.log(markdown.join("\n\n"));
  const c = result.cleanup!;
  console.log(
    `\nCleanup: ${c.kernelsStarted} kernels started and disposed; marked processes left: ${(c.processesLeft as unknown[]).length}; ` +
      `tslaunch-* temp entries left: ${(c.tmpEntriesLeft as unknown[]).length}; scratch folder removed.`,
  );
  if (result.errors.length) console.log(`\nErrors:\n${result.errors.map((e) => `* ${e}`).join("\n")}`);
  console.log(`\nJSON: ${path.relative(process.cwd(), outFile)}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

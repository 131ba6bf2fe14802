// Shared helpers for the benchmarks: statistics, markdown tables, running the anchor scripts as child
// processes, starting our kernel and plain tslab through the Node Jupyter client, and the leftover checks.
import { spawn, type ChildProcess } from "child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from "fs";
import os from "os";
import path from "path";
import { KernelClient } from "../kernel/client/kernel-client";
import { startKernelProcess, type KernelProcess } from "../kernel/client/kernel-process";

/** The repository root (dist/bench/lib.js -> ../..). */
export const REPO = path.resolve(__dirname, "..", "..");

export interface Stats {
  n: number;
  min: number;
  median: number;
  max: number;
}

export function stats(xs: number[]): Stats {
  if (xs.length === 0) return { n: 0, min: NaN, median: NaN, max: NaN };
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  const median = n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  return { n, min: s[0], median, max: s[n - 1] };
}

/** Milliseconds since an arbitrary origin, from the monotonic clock. */
export const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

export function fmt(x: number | undefined | null, digits = 1): string {
  if (x === undefined || x === null || !Number.isFinite(x)) return "—";
  return x.toFixed(digits);
}

/** "min / median / max" with a scale factor (e.g. 1e3 for s -> ms). */
export function fmtStats(s: Stats | undefined, scale = 1, digits = 1): string {
  if (!s || s.n === 0) return "—";
  return `${fmt(s.min * scale, digits)} / ${fmt(s.median * scale, digits)} / ${fmt(s.max * scale, digits)}`;
}

export function ratio(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return undefined;
  return a / b;
}

export function table(header: string[], rows: (string | number)[][]): string {
  const line = (cells: (string | number)[]) => `| ${cells.map(String).join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

export function loadavg(): number[] {
  return os.loadavg().map((x) => Math.round(x * 100) / 100);
}

export function uptimeLine(): string {
  return `up ${Math.round(os.uptime() / 60)} min, load average: ${loadavg().join(", ")}`;
}

/** Children of ours that a SIGINT/SIGTERM of the benchmark must stop (anchor scripts). */
const runningChildren = new Set<ChildProcess>();

export function stopRunningChildren(): void {
  for (const c of runningChildren) {
    try {
      c.kill("SIGTERM"); // ipp_bench.py turns SIGTERM into a normal exit that stops its cluster
    } catch {
      /* gone */
    }
  }
}

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  wallMs: number;
}

/** Runs a command to completion; its output is kept (and echoed with `echo`). Never rejects on exit status. */
export function runCommand(argv: string[], opts: { cwd?: string; timeoutMs?: number; echo?: boolean; env?: NodeJS.ProcessEnv } = {}): Promise<CommandResult> {
  return new Promise((resolve) => {
    const t0 = nowMs();
    const child = spawn(argv[0], argv.slice(1), { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
    runningChildren.add(child);
    let stdout = "";
    let stderr = "";
    child.stdout!.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
      if (opts.echo) {
        // The anchors' one-line summaries, indented; ipyparallel's progress bars (\r-redrawn) left out.
        const lines = d.split("\n").filter((l) => l.trim() && !l.includes("\r") && !/engine\/s\]/.test(l));
        for (const l of lines) process.stdout.write(`    ${l}\n`);
      }
    });
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    let timer: NodeJS.Timeout | undefined;
    if (opts.timeoutMs) {
      timer = setTimeout(() => {
        stderr += `\n[bench] timed out after ${opts.timeoutMs} ms: SIGTERM\n`;
        child.kill("SIGTERM");
        setTimeout(() => child.kill("SIGKILL"), 30_000).unref();
      }, opts.timeoutMs);
    }
    const done = (code: number | null, signal: NodeJS.Signals | null) => {
      clearTimeout(timer);
      runningChildren.delete(child);
      resolve({ code, signal, stdout, stderr, wallMs: nowMs() - t0 });
    };
    child.once("error", (err) => {
      stderr += String(err);
      done(null, null);
    });
    child.once("close", done);
  });
}

// ---------------------------------------------------------------------------------------------
// The anchors: a private, writable copy of the anchor folder, with its npm project usable.

export interface Anchors {
  dir: string;
  source: string;
  python: string;
  /** Why anchors of a kind cannot run here (empty when they can). */
  pythonProblem?: string;
  nodeProblem?: string;
  nodeModules: string;
}

const PYTHON = "/usr/bin/python3";

function anchorSourceCandidates(): string[] {
  const fromEnv = process.env.TSLAUNCH_ANCHORS;
  return [fromEnv, path.resolve(REPO, "..", "shared", "anchors"), path.resolve(REPO, "shared", "anchors"), "/work/shared/anchors"].filter(
    (x): x is string => !!x,
  );
}

/**
 * Copies the anchor folder (read-only in CI) into `scratch`. Its node/ project needs npm `zeromq`:
 * taken from the source copy if it was set up there, else linked to ours when the version is the one
 * the anchor lockfile pins, else installed with `npm ci`.
 */
export async function prepareAnchors(scratch: string, explicit?: string): Promise<Anchors> {
  const candidates = explicit ? [explicit] : anchorSourceCandidates();
  const source = candidates.find((c) => existsSync(path.join(c, "py", "launch_torch.py")));
  if (!source) throw new Error(`anchor folder not found (tried ${candidates.join(", ")}); pass --anchors DIR or set TSLAUNCH_ANCHORS`);
  const dir = path.join(scratch, "anchors");
  cpSync(source, dir, { recursive: true, filter: (src) => !src.includes(`${path.sep}node_modules`) && !src.includes("__pycache__") });
  // CI's copy is read-only: make ours writable (results/, __pycache__).
  await runCommand(["chmod", "-R", "u+w", dir]);

  const anchors: Anchors = { dir, source, python: PYTHON, nodeModules: "" };
  const nodeDir = path.join(dir, "node");
  const wanted = anchorZeromqVersion(nodeDir);
  const sourceModules = path.join(source, "node", "node_modules");
  const ours = path.join(REPO, "node_modules");
  if (existsSync(path.join(sourceModules, "zeromq", "package.json"))) {
    symlinkSync(sourceModules, path.join(nodeDir, "node_modules"), "dir");
    anchors.nodeModules = `${sourceModules} (the anchor folder's own npm ci)`;
  } else if (wanted && packageVersion(path.join(ours, "zeromq")) === wanted) {
    symlinkSync(ours, path.join(nodeDir, "node_modules"), "dir");
    anchors.nodeModules = `${ours} (zeromq ${wanted}, the version the anchor lockfile pins)`;
  } else {
    const r = await runCommand(["npm", "ci", "--no-audit", "--no-fund"], { cwd: nodeDir, timeoutMs: 180_000 });
    if (r.code !== 0) anchors.nodeProblem = `npm ci in the anchor node/ folder failed: ${r.stderr.trim().slice(-400)}`;
    else anchors.nodeModules = `npm ci in ${nodeDir}`;
  }

  const py = await runCommand([PYTHON, "-c", "import torch, ipyparallel, zmq; print(torch.__version__)"], { timeoutMs: 60_000 });
  if (py.code !== 0) {
    anchors.pythonProblem = `${PYTHON} cannot import torch/ipyparallel/zmq (run the anchors' setup.sh): ${py.stderr.trim().split("\n").pop()}`;
  }
  return anchors;
}

function anchorZeromqVersion(nodeDir: string): string | undefined {
  try {
    const lock = JSON.parse(readFileSync(path.join(nodeDir, "package-lock.json"), "utf8"));
    return lock.packages?.["node_modules/zeromq"]?.version;
  } catch {
    return undefined;
  }
}

function packageVersion(dir: string): string | undefined {
  try {
    return JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8")).version;
  } catch {
    return undefined;
  }
}

/** Runs one anchor script that writes `--out file.json`; resolves with the parsed JSON. */
export async function runAnchor(
  anchors: Anchors,
  kind: "py" | "node",
  script: string,
  args: (string | number)[],
  log: CommandLog,
  timeoutMs = 300_000,
): Promise<any> {
  const problem = kind === "py" ? anchors.pythonProblem : anchors.nodeProblem;
  if (problem) throw new Error(problem);
  const out = path.join(anchors.dir, "results", "tmp", `${script.replace(/[/.]/g, "_")}-${log.entries.length}.json`);
  mkdirSync(path.dirname(out), { recursive: true });
  const argv = [kind === "py" ? anchors.python : process.execPath, path.join(kind, script), ...args.map(String), "--out", out];
  const entry = log.add(argv.map((a) => (a.startsWith(anchors.dir) ? path.relative(anchors.dir, a) : a === process.execPath ? "node" : a)).join(" "));
  const r = await runCommand(argv, { cwd: anchors.dir, timeoutMs, echo: true });
  entry.wallMs = Math.round(r.wallMs);
  if (r.code !== 0 || !existsSync(out)) {
    throw new Error(`${script} failed (code ${r.code}, signal ${r.signal}): ${(r.stderr || r.stdout).trim().slice(-600)}`);
  }
  const json = JSON.parse(readFileSync(out, "utf8"));
  rmSync(out, { force: true });
  return json;
}

export interface CommandEntry {
  command: string;
  load: number[];
  at: string;
  wallMs?: number;
}

/** Every command the benchmark ran (ours described in words), with the load when it started. */
export class CommandLog {
  readonly entries: CommandEntry[] = [];
  add(command: string): CommandEntry {
    const entry: CommandEntry = { command, load: loadavg(), at: new Date().toISOString() };
    this.entries.push(entry);
    return entry;
  }
}

// ---------------------------------------------------------------------------------------------
// Kernels

export const MARKER_ENV = "TSLAUNCH_BENCH_MARKER";

export interface KernelKind {
  name: "tslaunch" | "tslab";
  argv: string[];
}

export function kernelKinds(): Record<KernelKind["name"], KernelKind> {
  return {
    tslaunch: { name: "tslaunch", argv: [process.execPath, path.join(REPO, "dist", "bin", "tslaunch.js"), "kernel", "--connection-file", "{connection_file}"] },
    tslab: { name: "tslab", argv: [process.execPath, path.join(REPO, "node_modules", "tslab", "bin", "tslab"), "kernel", "--config-path", "{connection_file}"] },
  };
}

export interface RunningKernel {
  kind: KernelKind["name"];
  proc: KernelProcess;
  client: KernelClient;
  /** start -> kernel_info reply and iopub subscribed (ms). */
  startupMs: number;
}

/**
 * Starts kernels with a marker in their environment (inherited by workers, for the leftover scan).
 * They inherit our TMPDIR (the scratch folder's tmp/).
 */
export class KernelPool {
  private readonly live = new Set<RunningKernel>();
  readonly pids: number[] = [];
  readonly tempDirs: string[] = [];

  constructor(
    private readonly marker: string,
    private readonly cwd: string,
    /** Extra environment for our kernel only (not plain tslab), e.g. from --kernel-env. */
    private readonly kernelEnv: Record<string, string> = {},
  ) {}

  async start(kind: KernelKind): Promise<RunningKernel> {
    const t0 = nowMs();
    const proc = await startKernelProcess({
      argv: kind.argv,
      cwd: this.cwd,
      env: { ...(kind.name === "tslaunch" ? this.kernelEnv : {}), [MARKER_ENV]: this.marker },
    });
    this.pids.push(proc.pid);
    this.tempDirs.push(proc.tempDir);
    const client = KernelClient.forProcess(proc);
    const k: RunningKernel = { kind: kind.name, proc, client, startupMs: 0 };
    this.live.add(k);
    try {
      await client.waitForReady(60_000);
    } catch (err) {
      await this.dispose(k);
      throw err;
    }
    k.startupMs = nowMs() - t0;
    return k;
  }

  async dispose(k: RunningKernel): Promise<void> {
    if (!this.live.delete(k)) return;
    // A polite shutdown first (the kernel stops its launches), then the process group goes.
    await k.client.shutdown({ timeoutMs: 3000 }).catch(() => undefined);
    k.client.close();
    await k.proc.dispose();
  }

  async disposeAll(): Promise<void> {
    await Promise.all([...this.live].map((k) => this.dispose(k)));
  }
}

export class CellTimeoutError extends Error {}

/**
 * Runs a cell; returns the wall time from execute_request to execute_reply+idle (when
 * KernelClient.execute resolves: both have arrived), and what came back. A cell still running after
 * timeoutMs is interrupted and reported as a CellTimeoutError with the kernel's output tail; the
 * caller then disposes the kernel.
 */
export async function timeCell(
  kernel: RunningKernel,
  code: string,
  onStream?: (name: string, text: string) => void,
  timeoutMs = 120_000,
): Promise<{ ms: number; status: string; streamMessages: number; errorText?: string }> {
  let streamMessages = 0;
  let stderrTail = ""; // shown with a failure: what the ranks said on stderr
  const t0 = nowMs();
  const execution = kernel.client.execute(code, {
    storeHistory: false,
    onIOPub: (msg) => {
      if (msg.header.msg_type === "stream") {
        streamMessages++;
        if (msg.content.name === "stderr") stderrTail = (stderrTail + String(msg.content.text)).slice(-2000);
        onStream?.(String(msg.content.name), String(msg.content.text));
      }
    },
  });
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), timeoutMs)));
  const first = await Promise.race([execution, timedOut]);
  clearTimeout(timer);
  if (first === "timeout") {
    await kernel.client.interrupt().catch(() => undefined);
    await Promise.race([execution.catch(() => undefined), sleep(10_000)]);
    const tail = kernel.proc.diagnostics().trim().slice(-1500);
    throw new CellTimeoutError(`cell ${JSON.stringify(code.slice(0, 60))} still running after ${timeoutMs} ms; interrupted.${tail ? ` Kernel output tail: ${tail}` : ""}`);
  }
  const ms = nowMs() - t0;
  const reply = first.reply;
  const status = String(reply.content.status);
  const errorText = status === "ok" ? undefined : `${reply.content.ename}: ${reply.content.evalue}${stderrTail ? ` (stderr: ${JSON.stringify(stderrTail)})` : ""}`;
  return { ms, status, streamMessages, errorText };
}

// ---------------------------------------------------------------------------------------------
// Leftovers

/** Live (non-zombie) processes whose environment holds MARKER_ENV=marker. */
export function processesWithMarker(marker: string): { pid: number; cmdline: string }[] {
  const needle = Buffer.from(`${MARKER_ENV}=${marker}\0`);
  const found: { pid: number; cmdline: string }[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    try {
      const environ = readFileSync(`/proc/${pid}/environ`);
      if (!environ.includes(needle)) continue;
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) continue;
      found.push({ pid, cmdline: readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim() });
    } catch {
      /* vanished or not ours to read */
    }
  }
  return found;
}

export async function waitForNoMarkedProcesses(marker: string, timeoutMs: number) {
  const deadline = nowMs() + timeoutMs;
  let left = processesWithMarker(marker);
  while (left.length > 0 && nowMs() < deadline) {
    await sleep(100);
    left = processesWithMarker(marker);
  }
  return left;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * The benchmark's scratch folder. Not named tslaunch-*: tests running beside us snapshot /tmp/tslaunch-*
 * for their own leak checks. Its tmp/ becomes TMPDIR for us and everything we start, so kernel
 * connection folders, launch folders and anchor ipc files all land in it and go with it.
 */
export function makeScratch(): { dir: string; tmp: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), "tsl-bench-"));
  const tmp = path.join(dir, "tmp");
  mkdirSync(tmp);
  return { dir, tmp };
}

/** What is left in the shared TMPDIR (kernel and launch folders should all be gone). */
export function tmpLeftovers(tmp: string): string[] {
  try {
    return readdirSync(tmp).filter((e) => e.startsWith("tslaunch-"));
  } catch {
    return [];
  }
}

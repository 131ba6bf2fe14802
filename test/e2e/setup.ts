/**
 * Shared set-up for the end-to-end suites: installs the built tslaunch kernelspec into a temp
 * prefix (as a user would, with `tslaunch install --prefix DIR`), starts one Jupyter server per
 * test file with a private TMPDIR, and offers the checks every test ends with: no worker process
 * left, no tslaunch-* launch folder left.
 *
 * The suites run the built kernel: `npx tsc -p tsconfig.json` first.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Kernel } from '@jupyterlab/services';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { startJupyterServer, startKernel, type JupyterServer } from '../helpers/jupyter-server';
import { makeTempDir, prefixJupyterDir, randomId, readKernelSpec, removeDir } from '../helpers/kernelspec-fixture';
import {
  TSLAUNCH_TEMP_PREFIX,
  cmdlineOf,
  descendantsOf,
  killPids,
  newTempEntries,
  processesWithEnv,
  readStat,
  sleep,
  snapshotTempEntries,
  waitUntilGone,
  type TempSnapshot,
} from '../helpers/leftovers';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');
export const CLI = path.join(REPO_ROOT, 'dist', 'bin', 'tslaunch.js');
export const WORKER_MAIN = path.join(REPO_ROOT, 'dist', 'launcher', 'worker', 'worker-main.js');
export const KERNEL_NAME = 'tslaunch';

/** The built kernel must exist; a source newer than the build is reported (the suite would test stale code). */
function checkBuilt(): void {
  if (!fs.existsSync(CLI) || !fs.existsSync(WORKER_MAIN)) {
    throw new Error(`${CLI} is missing: build first (cd ${REPO_ROOT} && npx tsc -p tsconfig.json)`);
  }
  const builtAt = fs.statSync(CLI).mtimeMs;
  for (const dir of ['kernel', 'launcher', 'bin']) {
    const stack = [path.join(REPO_ROOT, dir)];
    while (stack.length > 0) {
      const d = stack.pop()!;
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) stack.push(p);
        else if (p.endsWith('.ts') && fs.statSync(p).mtimeMs > builtAt + 1000) {
          // Only a warning: other work may be editing the sources while this suite runs.
          console.warn(`${p} is newer than ${CLI}: the suite tests the last build (npx tsc -p tsconfig.json)`);
          return;
        }
      }
    }
  }
}

export interface KernelSpecInstall {
  /** The --prefix given to `tslaunch install`. */
  prefix: string;
  /** `<prefix>/share/jupyter`: the JUPYTER_PATH entry. */
  jupyterDir: string;
  remove(): void;
}

/** `node dist/bin/tslaunch.js install --prefix <temp>`; checks the kernel.json it wrote. */
export function installKernelSpec(): KernelSpecInstall {
  checkBuilt();
  const prefix = makeTempDir('tsl-e2e-prefix-');
  execFileSync(process.execPath, [CLI, 'install', '--prefix', prefix], { stdio: 'pipe', timeout: 30_000 });
  const jupyterDir = prefixJupyterDir(prefix);
  const spec = readKernelSpec(jupyterDir, KERNEL_NAME);
  if (!spec.argv.includes('{connection_file}') || !spec.argv.some((a) => a.endsWith('tslaunch.js'))) {
    throw new Error(`unexpected kernel.json: ${JSON.stringify(spec)}`);
  }
  return { prefix, jupyterDir, remove: () => removeDir(prefix) };
}

/**
 * jupyter_server drops iopub output above 1 MB/s (ServerApp.iopub_data_rate_limit) and tells the
 * client so on stderr; suites that measure tslaunch's own delivery of large outputs lift it.
 */
export const NO_IOPUB_RATE_LIMIT = ['--ServerApp.iopub_data_rate_limit=1e12', '--ServerApp.iopub_msg_rate_limit=1e12'];

/**
 * The kernelspec, a private TMPDIR and a marker env var, without a Jupyter server: for runs that
 * start kernels themselves (nbconvert, jupyter_kernel_test). Pass `childEnv` to those runs so
 * their kernels and workers carry the marker and use the private TMPDIR.
 */
export interface KernelEnv {
  spec: KernelSpecInstall;
  /** The kernels' (and so the workers') private TMPDIR. */
  tmp: string;
  /** Taken at set-up: launch folders are new tslaunch-* entries in `tmp` since then. */
  since: TempSnapshot;
  /** Carried by every process started with childEnv (or, with a server, by the server's kernels). */
  marker: { name: string; value: string };
  /** TMPDIR and the marker, for nbconvertExecute / runJupyterKernelTest `env`. */
  childEnv: Record<string, string>;
  /** Worker processes (worker-main.js) carrying the marker, or descended from `kernelPid`. */
  workerPids(kernelPid?: number): number[];
  /** tslaunch-* entries in the private TMPDIR. */
  launchDirs(): string[];
  /**
   * Polls up to timeoutMs (default 5 s) until no worker process and no launch folder is left;
   * throws a message listing what remains. Returns how long it took.
   */
  expectNothingLeft(opts?: { timeoutMs?: number; kernelPid?: number; label?: string }): Promise<number>;
  /** Kills any worker that survived (so one failing test does not poison the next), removes leftover folders. */
  cleanUp(): Promise<{ killed: number[]; removed: string[] }>;
  stop(): Promise<void>;
}

export interface E2E extends KernelEnv {
  server: JupyterServer;
  /** The pid of a kernel's process: the server's descendant whose cmdline runs `tslaunch.js kernel` with its connection file. */
  kernelPid(kernel: Kernel.IKernelConnection): number;
  startKernel(): Promise<Kernel.IKernelConnection>;
}

export function isWorker(pid: number): boolean {
  return cmdlineOf(pid).includes('worker-main.js');
}

export const E2E_MARKER_ENV = 'TSLAUNCH_E2E_MARKER';

function kernelEnv(spec: KernelSpecInstall, marker: { name: string; value: string }, tmp: string): KernelEnv {
  const since = snapshotTempEntries(TSLAUNCH_TEMP_PREFIX, tmp);
  const workerPids = (kernelPid?: number): number[] => {
    const found = new Set(processesWithEnv(marker.name, marker.value).filter(isWorker));
    if (kernelPid !== undefined) for (const p of descendantsOf(kernelPid)) if (isWorker(p)) found.add(p);
    return [...found].sort((a, b) => a - b);
  };
  const launchDirs = (): string[] => newTempEntries(since);

  const expectNothingLeft = async (o: { timeoutMs?: number; kernelPid?: number; label?: string } = {}): Promise<number> => {
    const t0 = Date.now();
    const deadline = t0 + (o.timeoutMs ?? 5000);
    let workers = workerPids(o.kernelPid);
    let dirs = launchDirs();
    while ((workers.length > 0 || dirs.length > 0) && Date.now() < deadline) {
      await sleep(50);
      workers = workerPids(o.kernelPid);
      dirs = launchDirs();
    }
    if (workers.length === 0 && dirs.length === 0) return Date.now() - t0;
    const lines = [`Left behind${o.label ? ` after ${o.label}` : ''} (waited ${o.timeoutMs ?? 5000} ms):`];
    for (const p of workers) lines.push(`  worker pid ${p} [${readStat(p)?.state ?? '?'}] ${cmdlineOf(p)}`);
    for (const d of dirs) lines.push(`  launch folder ${d}: ${safeList(d)}`);
    throw new Error(lines.join('\n'));
  };

  const cleanUp = async (): Promise<{ killed: number[]; removed: string[] }> => {
    const killed = killPids(workerPids(), 'SIGKILL');
    await waitUntilGone(killed, 3000);
    const removed = launchDirs();
    for (const d of removed) removeDir(d);
    return { killed, removed };
  };

  return {
    spec,
    tmp,
    since,
    marker,
    childEnv: { TMPDIR: tmp, [marker.name]: marker.value },
    workerPids,
    launchDirs,
    expectNothingLeft,
    cleanUp,
    stop: async () => {
      // Whatever a test did: no marked process may outlive the file.
      const strays = processesWithEnv(marker.name, marker.value);
      killPids(strays, 'SIGKILL');
      await waitUntilGone(strays, 3000);
      spec.remove();
      removeDir(tmp);
    },
  };
}

/** Installs the kernelspec; a private TMPDIR and marker for kernels started without a server. */
export function setupKernelEnv(): KernelEnv {
  const spec = installKernelSpec();
  const tmp = makeTempDir('tsl-e2e-tmp-');
  return kernelEnv(spec, { name: E2E_MARKER_ENV, value: randomId(8) }, tmp);
}

/** Installs the kernelspec and starts a Jupyter server whose env has TMPDIR set to a private dir. */
export async function setupE2E(opts: { env?: Record<string, string | undefined>; extraArgs?: string[] } = {}): Promise<E2E> {
  const spec = installKernelSpec();
  const tmp = makeTempDir('tsl-e2e-tmp-');
  let server: JupyterServer;
  try {
    server = await startJupyterServer({
      jupyterPath: [spec.jupyterDir],
      env: { TMPDIR: tmp, ...opts.env },
      extraArgs: opts.extraArgs,
    });
  } catch (e) {
    spec.remove();
    removeDir(tmp);
    throw e;
  }
  // The server's own marker is inherited by its kernels and their workers.
  const base = kernelEnv(spec, server.markerEnv, tmp);

  const kernelPid = (kernel: Kernel.IKernelConnection): number => {
    const candidates = descendantsOf(server.pid).filter((p) => {
      const cmd = cmdlineOf(p);
      return cmd.includes('tslaunch.js kernel') && cmd.includes(kernel.id);
    });
    if (candidates.length !== 1) {
      const all = descendantsOf(server.pid).map((p) => `${p} ${cmdlineOf(p)}`).join('\n');
      throw new Error(`expected one kernel process for ${kernel.id}, found ${candidates.length}:\n${all}`);
    }
    return candidates[0];
  };

  return {
    ...base,
    server,
    kernelPid,
    startKernel: () => startKernel(server, KERNEL_NAME, 60_000),
    stop: async () => {
      try {
        await server.stop();
      } finally {
        await base.stop();
      }
    },
  };
}

function safeList(dir: string): string {
  try {
    return JSON.stringify(fs.readdirSync(dir));
  } catch {
    return '(unreadable)';
  }
}

/**
 * Samples /proc every `intervalMs` for worker processes below `kernelPid` (or carrying the marker)
 * until stop() is called: proves that something never started, which a single look could miss.
 */
export function sampleWorkers(e2e: KernelEnv, kernelPid: number, intervalMs = 10): { stop(): Promise<number[]> } {
  const seen = new Set<number>();
  let running = true;
  const loop = (async () => {
    while (running) {
      for (const p of e2e.workerPids(kernelPid)) seen.add(p);
      await sleep(intervalMs);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return [...seen];
    },
  };
}

/** Lines of `text`, without the empty string after a final newline. */
export function linesOf(text: string): string[] {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** Groups prefixed lines by their `[rank<r>]: ` prefix (or a custom regex with one capture group for the rank). */
export function linesByRank(text: string, prefix = /^\[rank(\d+)\]: (.*)$/): { byRank: Map<number, string[]>; unprefixed: string[] } {
  const byRank = new Map<number, string[]>();
  const unprefixed: string[] = [];
  for (const line of linesOf(text)) {
    const m = prefix.exec(line);
    if (!m) {
      unprefixed.push(line);
      continue;
    }
    const r = Number(m[1]);
    const list = byRank.get(r);
    if (list) list.push(m[2]);
    else byRank.set(r, [m[2]]);
  }
  return { byRank, unprefixed };
}


/**
 * A kernel shared by one describe block, with the per-test leak check (no worker of that kernel, no
 * launch folder left) and the clean-up after it. `e2e` is read when the hooks run.
 */
export function useKernel(
  e2e: () => E2E,
  leakTimeoutMs = 5000,
): { kernel: () => Kernel.IKernelConnection; pid: () => number; refreshPid: () => void } {
  let kernel: Kernel.IKernelConnection;
  let pid: number;
  beforeAll(async () => {
    kernel = await e2e().startKernel();
    pid = e2e().kernelPid(kernel);
  }, 90_000);
  afterEach(async () => {
    try {
      await e2e().expectNothingLeft({ kernelPid: pid, timeoutMs: leakTimeoutMs });
    } finally {
      await e2e().cleanUp();
    }
  });
  afterAll(async () => {
    if (kernel && !kernel.isDisposed) await kernel.shutdown().catch(() => undefined);
  }, 30_000);
  return { kernel: () => kernel, pid: () => pid, refreshPid: () => (pid = e2e().kernelPid(kernel)) };
}

/** For suites whose kernels a Jupyter client outside this process starts (nbconvert, jupyter_kernel_test). */
export function useKernelEnv(): () => KernelEnv {
  let env: KernelEnv;
  beforeAll(() => {
    env = setupKernelEnv();
  });
  afterEach(async () => {
    try {
      await env.expectNothingLeft({ timeoutMs: 5000 });
    } finally {
      await env.cleanUp();
    }
  });
  afterAll(async () => {
    await env?.stop();
  });
  return () => env;
}

/**
 * For suites whose tests start their own kernels (kill, restart, shut them down): `newKernel()`
 * starts one; after each test, the leak check runs, then whatever kernel is left is shut down.
 */
export function useKernelsPerTest(e2e: () => E2E): () => Promise<{ kernel: Kernel.IKernelConnection; pid: number }> {
  let kernels: Kernel.IKernelConnection[] = [];
  afterEach(async () => {
    try {
      await e2e().expectNothingLeft({ timeoutMs: 5000 });
    } finally {
      for (const k of kernels) if (!k.isDisposed) await k.shutdown().catch(() => undefined);
      kernels = [];
      await e2e().cleanUp();
    }
  }, 60_000);
  return async () => {
    const kernel = await e2e().startKernel();
    kernels.push(kernel);
    return { kernel, pid: e2e().kernelPid(kernel) };
  };
}


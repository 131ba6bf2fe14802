/**
 * The kernel's warm pool (launcher/group/warm-pool.ts) through a real Jupyter server: after a launch
 * the kernel starts warm workers when idle, the next launch takes them, and what a body sees is what
 * a freshly spawned worker sees. Warm workers hold no device, cost no CPU while idle, and never
 * outlive the kernel (shutdown, restart, SIGKILL).
 */
import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCell } from '../helpers/jupyter-server';
import { cmdlineOf, descendantsOf, sleep, waitUntilGone } from '../helpers/leftovers';
import { linesByRank, setupE2E, useKernelsPerTest, type E2E } from './setup';

let e2e: E2E;

beforeAll(async () => {
  e2e = await setupE2E();
}, 90_000);
afterAll(async () => {
  await e2e?.stop();
}, 60_000);

const newKernel = useKernelsPerTest(() => e2e);

/** Idle warm workers of a kernel (their process title while they wait). */
function warmPids(kernelPid: number): number[] {
  return descendantsOf(kernelPid).filter((p) => cmdlineOf(p).startsWith('tslaunch-warm'));
}

async function waitForWarm(kernelPid: number, count: number, timeoutMs = 10_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pids = warmPids(kernelPid);
    if (pids.length >= count) return pids;
    if (Date.now() > deadline) throw new Error(`${pids.length} warm workers after ${timeoutMs} ms, expected ${count}`);
    await sleep(50);
  }
}

/** Warm workers once they have had time to start and replay the session ahead (and replace any that stopped). */
async function settledWarm(kernelPid: number, count: number, stableMs = 2500, timeoutMs = 30_000): Promise<number[]> {
  // A worker whose pre-replay stopped exits and is replaced, later under load: settled means the
  // same warm workers for `stableMs`, not a fixed wait.
  const deadline = Date.now() + timeoutMs;
  let last = '';
  let since = Date.now();
  for (;;) {
    const pids = await waitForWarm(kernelPid, count, Math.max(1000, deadline - Date.now()));
    const key = [...pids].sort((a, b) => a - b).join(',');
    if (key !== last) {
      last = key;
      since = Date.now();
    } else if (Date.now() - since >= stableMs) {
      return pids;
    }
    if (Date.now() > deadline) throw new Error(`the warm workers never settled within ${timeoutMs} ms (last: ${key})`);
    await sleep(100);
  }
}

/** Everything a body can see of its world, with the per-launch values (folder paths, keys) masked. */
const INSPECT = `%%launch -n 2
const perLaunch = /^TSLAUNCH_(AGENT_ENDPOINT|PAYLOAD|SEGMENT_PREFIX|COLLECTIVE_KEY)$/;
const env = Object.entries(process.env).map(([k, v]) => [k, perLaunch.test(k) ? "<per launch>" : v]).sort();
console.log("pid " + process.pid);
console.log(JSON.stringify({
  env, cwd: process.cwd(), argv: process.argv, execArgv: process.execArgv, globals: Object.getOwnPropertyNames(globalThis).sort(),
  session: typeof sessionHelper, sessionValue: sessionHelper(2), send: typeof process.send, channel: typeof process.channel, connected: typeof process.connected,
  required: Object.keys(require.cache).filter((f) => !f.includes("/dist/launcher/")).length,
}));`;

function inspected(stdout: string): { pids: number[]; views: string[] } {
  const { byRank, unprefixed } = linesByRank(stdout);
  expect(unprefixed).toEqual([]);
  const pids = [0, 1].map((r) => Number(/^pid (\d+)$/.exec(byRank.get(r)![0])![1]));
  return { pids, views: [0, 1].map((r) => byRank.get(r)![1]) };
}

describe('the warm pool', () => {
  it('a warm launch sees exactly what a cold launch sees (environment, globals, cwd, argv, the session), from workers started before it', async () => {
    const { kernel, pid } = await newKernel();
    expect((await runCell(kernel, 'const sessionHelper = (x: number) => x * 21;')).reply.content.status).toBe('ok');
    const cold = await runCell(kernel, INSPECT, { timeoutMs: 60_000 });
    expect(cold.reply.content.status, cold.stderr).toBe('ok');
    const warmBefore = await waitForWarm(pid, 2);
    const warm = await runCell(kernel, INSPECT, { timeoutMs: 60_000 });
    expect(warm.reply.content.status, warm.stderr).toBe('ok');
    const c = inspected(cold.stdout);
    const w = inspected(warm.stdout);
    for (const p of w.pids) expect(warmBefore).toContain(p); // taken from the pool, not spawned
    for (const p of c.pids) expect(warmBefore).not.toContain(p);
    expect(w.views).toEqual(c.views);
    expect(JSON.parse(w.views[0]).sessionValue).toBe(42);
  }, 120_000);

  it('a launch right after a new cell sees that cell', async () => {
    const { kernel, pid } = await newKernel();
    expect((await runCell(kernel, '%%launch -n 2\nconsole.log("first")', { timeoutMs: 60_000 })).reply.content.status).toBe('ok');
    const warm = await waitForWarm(pid, 2);
    expect((await runCell(kernel, 'const addedLater = { n: 7 };')).reply.content.status).toBe('ok');
    const r = await runCell(kernel, '%%launch -n 2\nconsole.log("pid " + process.pid + " sees " + JSON.stringify(addedLater));', { timeoutMs: 60_000 });
    expect(r.reply.content.status, r.stderr).toBe('ok');
    const { byRank } = linesByRank(r.stdout);
    for (const rank of [0, 1]) {
      const m = /^pid (\d+) sees \{"n":7\}$/.exec(byRank.get(rank)![0]);
      expect(m, r.stdout).not.toBeNull();
      expect(warm).toContain(Number(m![1]));
    }
  }, 120_000);

  it('warm workers hold no device and cost no CPU while idle', async () => {
    const { kernel, pid } = await newKernel();
    expect((await runCell(kernel, '%%launch -n 2\nconsole.log("x")', { timeoutMs: 60_000 })).reply.content.status).toBe('ok');
    const warm = await waitForWarm(pid, 2);
    const cpu = (p: number) => {
      const fields = fs.readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1].split(' ');
      return Number(fields[11]) + Number(fields[12]); // utime + stime, in clock ticks
    };
    // Let them finish starting (at low priority, on a loaded machine that can take seconds).
    for (let settled = 0, last = warm.map(cpu).join(), deadline = Date.now() + 15_000; settled < 2 && Date.now() < deadline; ) {
      await sleep(500);
      const now = warm.map(cpu).join();
      settled = now === last ? settled + 1 : 0;
      last = now;
    }
    const before = warm.map(cpu);
    await sleep(2000);
    const after = warm.map(cpu);
    warm.forEach((_, i) => expect(after[i] - before[i], `warm worker ${warm[i]} used CPU while idle`).toBeLessThanOrEqual(1));
    for (const p of warm) {
      const maps = fs.readFileSync(`/proc/${p}/maps`, 'utf8');
      expect(maps).not.toMatch(/libcuda|libcudart|libnvidia|libamdhip|libhsa|libtpu|libnrt/);
      const fds = fs.readdirSync(`/proc/${p}/fd`).map((fd) => {
        try {
          return fs.readlinkSync(`/proc/${p}/fd/${fd}`);
        } catch {
          return '';
        }
      });
      expect(fds.filter((f) => /^\/dev\/(nvidia|dri|kfd|accel|neuron)/.test(f))).toEqual([]);
    }
  }, 120_000);

  it('pre-replay: warm workers replay the session before the launch, which then only runs its body', async () => {
    const { kernel, pid } = await newKernel();
    expect((await runCell(kernel, 'const replayedAt = Date.now();\nconst replayedBy = process.pid;')).reply.content.status).toBe('ok');
    const first = await runCell(kernel, '%%launch -n 2\nconsole.log("first")', { timeoutMs: 60_000 });
    expect(first.reply.content.status, first.stderr + JSON.stringify(first.reply.content)).toBe('ok');
    const warm = await settledWarm(pid, 2);
    const submitted = Date.now();
    const r = await runCell(kernel, `%%launch -n 2\nconsole.log(JSON.stringify({ pid: process.pid, replayedBy: replayedBy, ahead: replayedAt < ${submitted} }));`, { timeoutMs: 60_000 });
    expect(r.reply.content.status, r.stderr + JSON.stringify(r.reply.content)).toBe('ok');
    const { byRank } = linesByRank(r.stdout);
    for (const rank of [0, 1]) {
      const seen = JSON.parse(byRank.get(rank)![0]);
      expect(warm).toContain(seen.pid);
      expect(seen).toEqual({ pid: seen.pid, replayedBy: seen.pid, ahead: true });
    }
  }, 120_000);

  it('pre-replay stops before a cell that reads a rank variable: that cell runs after the rank is given, in a warm worker', async () => {
    const { kernel, pid } = await newKernel();
    for (const cell of ['const before = 1;', 'const myRank = process.env.RANK;\nconst myWorld = process.env["WORLD_SIZE"];', 'const after = myRank + "/" + myWorld;']) {
      expect((await runCell(kernel, cell)).reply.content.status).toBe('ok');
    }
    expect((await runCell(kernel, '%%launch -n 2\nconsole.log("first")', { timeoutMs: 60_000 })).reply.content.status).toBe('ok');
    const warm = await settledWarm(pid, 2);
    const r = await runCell(kernel, '%%launch -n 2\nconsole.log(process.pid + " " + after + " " + before);', { timeoutMs: 60_000 });
    expect(r.reply.content.status, r.stderr).toBe('ok');
    const { byRank } = linesByRank(r.stdout);
    for (const rank of [0, 1]) {
      const [p, seen, before] = byRank.get(rank)![0].split(' ');
      expect(warm).toContain(Number(p));
      expect(`${seen} ${before}`).toBe(`${rank}/2 1`);
    }
  }, 120_000);

  const offending = {
    'loads a native library': `const koffi = require(${JSON.stringify(require.resolve('koffi'))});\nconst getpid = koffi.load("libc.so.6").func("int getpid()");\nconst ran = String(getpid() === process.pid);`,
    'starts a process': 'const ran = require("child_process").execSync("echo from-a-shell").toString().trim();',
    // Any native addon tslaunch itself does not load (rollup's comes with the test tools).
    'loads a native addon': `const ran = String(typeof require(${JSON.stringify(require.resolve('@rollup/rollup-linux-x64-gnu'))}).parse === "function");`,
  };
  for (const [what, cell] of Object.entries(offending)) {
    it(`pre-replay stops before a cell that ${what}: earlier cells are replayed ahead, that one after the rank is given`, async () => {
      const { kernel, pid } = await newKernel();
      const cells = ['const plainAt = Date.now();', `${cell}\nconst offendingAt = Date.now();`];
      for (const c of cells) expect((await runCell(kernel, c)).reply.content.status).toBe('ok');
      expect((await runCell(kernel, '%%launch -n 2\nconsole.log("first")', { timeoutMs: 60_000 })).reply.content.status).toBe('ok');
      const warm = await settledWarm(pid, 2);
      const submitted = Date.now();
      const r = await runCell(kernel, `%%launch -n 2\nconsole.log([process.pid, plainAt < ${submitted}, offendingAt > ${submitted}, ran].join(" "));`, { timeoutMs: 60_000 });
      expect(r.reply.content.status, r.stderr).toBe('ok');
      const { byRank } = linesByRank(r.stdout);
      for (const rank of [0, 1]) {
        const [p, ...rest] = byRank.get(rank)![0].split(' ');
        expect(warm).toContain(Number(p));
        expect(rest.join(' ')).toBe(`true true ${what === 'starts a process' ? 'from-a-shell' : 'true'}`);
      }
    }, 120_000);
  }

  it('pre-replayed and fresh workers agree when cells read and write the environment, and when it changes', async () => {
    const { kernel, pid } = await newKernel();
    const show = '%%launch -n 2\nconsole.log([process.pid, process.env.TSL_COUNTER, mode, process.env.TSL_MODE ?? "-"].join(" "));';
    for (const cell of ['process.env.TSL_COUNTER = String(Number(process.env.TSL_COUNTER ?? 0) + 1);', 'const mode = process.env.TSL_MODE ?? "unset";']) {
      expect((await runCell(kernel, cell)).reply.content.status).toBe('ok');
    }
    const seen = async (expectWarm: number[] | null) => {
      const r = await runCell(kernel, show, { timeoutMs: 60_000 });
      expect(r.reply.content.status, r.stderr).toBe('ok');
      const { byRank } = linesByRank(r.stdout);
      return [0, 1].map((rank) => {
        const [p, ...rest] = byRank.get(rank)![0].split(' ');
        if (expectWarm) expect(expectWarm).toContain(Number(p));
        return rest.join(' ');
      });
    };
    // The kernel ran the counter cell once (1); every worker replays it once more (2).
    expect(await seen(null)).toEqual(['2 unset -', '2 unset -']);
    expect(await seen(await settledWarm(pid, 2))).toEqual(['2 unset -', '2 unset -']);
    // A variable an earlier cell read changes: workers that replayed it with the old value are replaced.
    expect((await runCell(kernel, 'process.env.TSL_MODE = "b";')).reply.content.status).toBe('ok');
    expect(await seen(await settledWarm(pid, 2))).toEqual(['2 b b', '2 b b']);
  }, 120_000);

  for (const how of ['shutdown', 'restart', 'SIGKILL'] as const) {
    it(`warm workers are gone after the kernel's ${how}`, async () => {
      const { kernel, pid } = await newKernel();
      expect((await runCell(kernel, '%%launch -n 3\nconsole.log("x")', { timeoutMs: 60_000 })).reply.content.status).toBe('ok');
      const warm = await waitForWarm(pid, 3);
      if (how === 'shutdown') await kernel.shutdown();
      else if (how === 'restart') await kernel.restart();
      else process.kill(pid, 'SIGKILL');
      expect(await waitUntilGone(warm, 5000)).toEqual([]);
      if (how === 'restart') {
        const r = await runCell(kernel, '%%launch -n 2\nconsole.log("after restart")', { timeoutMs: 60_000 });
        expect(r.reply.content.status, r.stderr).toBe('ok');
      }
    }, 120_000);
  }
});

describe('TSLAUNCH_WARM_POOL=off', () => {
  let off: E2E;
  beforeAll(async () => {
    off = await setupE2E({ env: { TSLAUNCH_WARM_POOL: 'off' } });
  }, 90_000);
  afterAll(async () => {
    await off?.stop();
  }, 60_000);

  it('starts no warm worker', async () => {
    const kernel = await off.startKernel();
    try {
      const pid = off.kernelPid(kernel);
      expect((await runCell(kernel, '%%launch -n 2\nconsole.log("x")', { timeoutMs: 60_000 })).reply.content.status).toBe('ok');
      await sleep(1500);
      expect(warmPids(pid)).toEqual([]);
    } finally {
      await kernel.shutdown().catch(() => undefined);
    }
  }, 120_000);
});

describe('TSLAUNCH_WARM_POOL_START=2', () => {
  let started: E2E;
  beforeAll(async () => {
    started = await setupE2E({ env: { TSLAUNCH_WARM_POOL_START: '2' } });
  }, 90_000);
  afterAll(async () => {
    await started?.stop();
  }, 60_000);

  it('starts 2 warm workers with the kernel, before any launch; the first launch takes them', async () => {
    const kernel = await started.startKernel();
    try {
      const pid = started.kernelPid(kernel);
      const warm = await waitForWarm(pid, 2);
      const r = await runCell(kernel, '%%launch -n 2\nconsole.log("pid " + process.pid);', { timeoutMs: 60_000 });
      expect(r.reply.content.status, r.stderr).toBe('ok');
      const { byRank } = linesByRank(r.stdout);
      for (const rank of [0, 1]) expect(warm).toContain(Number(/^pid (\d+)$/.exec(byRank.get(rank)![0])![1]));
    } finally {
      await kernel.shutdown().catch(() => undefined);
    }
  }, 120_000);
});

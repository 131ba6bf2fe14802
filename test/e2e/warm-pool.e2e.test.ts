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

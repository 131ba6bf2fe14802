/**
 * Collectives between real worker processes (`Launch` of the built package; build first): every
 * collective × dtype × op on seeded random data, world sizes 1-4 and two nodes on loopback, the
 * lengths that find off-by-ones (0, 1, n-1, n+1, 4 KiB, 1 MiB + 3, 64 MiB), mismatched calls, the
 * timeout, a rank that dies mid-collective (with and without restarts). Nothing may be left behind:
 * no worker, no launch folder, no shared-memory segment in /dev/shm.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { LaunchEvent } from '../../launcher/contract';
import { freePort } from '../helpers/free-port';
import { CLI, FIXTURES, childEnv, outputText, runLaunch, spawnNode, useLeakChecks, withTimeout, type Child } from '../fixtures/support';

const leak = useLeakChecks('collectives', 'the launch');
const MATRIX = JSON.stringify(path.join(FIXTURES, 'collectives-matrix.js'));

/** Every `ok`/`bad` line of every rank; fails with the bad ones. */
function expectAllOk(events: LaunchEvent[], worldSize: number, minCases: number): void {
  for (let rank = 0; rank < worldSize; rank++) {
    const text = outputText(events, rank);
    const lines = text.split('\n').filter(Boolean);
    const bad = lines.filter((l) => / bad /.test(l) || !/ (ok|done) /.test(l));
    expect(bad, `rank ${rank}:\n${text.slice(0, 4000)}`).toEqual([]);
    expect(lines.filter((l) => / ok /.test(l)).length, `rank ${rank}'s cases`).toBeGreaterThanOrEqual(minCases);
    expect(text).toMatch(/done \d+\n$/);
  }
}

describe('collectives on one node', () => {
  for (const n of [1, 2, 3, 4]) {
    it(`world size ${n}: every collective, dtype and op gives the expected result on every rank (lengths 0, 1, n-1, n+1, 4 KiB, 1 MiB + 3)`, async () => {
      const lengths = [...new Set([0, 1, Math.max(n - 1, 0), n + 1, 4096 / 4])];
      const body = `
        const m = require(${MATRIX});
        await m.run({ seed: ${n}, lengths: ${JSON.stringify(lengths)} });
        await m.run({ seed: ${n + 10}, lengths: [(1 << 20) + 3], ops: ['sum', 'max'] });
      `;
      const { result, events } = await runLaunch({ numProcesses: n, marker: leak.marker, body, timeoutMs: 120_000 });
      expect(result.outcome, JSON.stringify(result.failures)).toBe('succeeded');
      expectAllOk(events, n, 100);
    }, 150_000);
  }

  it('64 MiB float32 all-reduce at n = 2 and n = 4', async () => {
    for (const n of [2, 4]) {
      const body = `await require(${MATRIX}).run({ lengths: [], big: [16 << 20] });`;
      const { result, events } = await runLaunch({ numProcesses: n, marker: leak.marker, body, timeoutMs: 120_000 });
      expect(result.outcome, JSON.stringify(result.failures)).toBe('succeeded');
      expectAllOk(events, n, 3);
      expect(outputText(events, 0)).toContain(`ok allReduce f32 sum len ${16 << 20} (big)`);
    }
  }, 240_000);

  it('different lengths or dtypes for the same collective are an error on every rank, naming the collective and its sequence number', async () => {
    const body = `
      const { allReduce, CollectiveError } = require('tslaunch');
      const rank = Number(process.env.RANK);
      await allReduce(new Float32Array(4));                       // seq 0: fine
      const x = rank === 1 ? new Float32Array(5) : new Float32Array(4);
      const err = await allReduce(x).then(() => null, (e) => e);
      console.log('length: ' + (err instanceof CollectiveError) + ' ' + (err && err.message));
      const y = rank === 2 ? new Float64Array(4) : new Float32Array(4);
      const err2 = await allReduce(y).then(() => null, (e) => e);
      console.log('dtype: ' + (err2 && err2.message));
    `;
    const { result, events } = await runLaunch({ numProcesses: 3, marker: leak.marker, body, timeoutMs: 60_000 });
    expect(result.outcome, JSON.stringify(result.failures)).toBe('succeeded');
    for (let rank = 0; rank < 3; rank++) {
      const out = outputText(events, rank);
      expect(out, `rank ${rank}`).toMatch(/length: true .*allReduce.*(#|seq(uence)? ?(number )?)1\b/i);
      expect(out, `rank ${rank}`).toMatch(/length: .*\b5\b/);
      expect(out, `rank ${rank}`).toMatch(/dtype: .*allReduce.*(float64|Float64Array)/i);
    }
  }, 90_000);

  it('a collective only some ranks call fails after the collective timeout on those ranks, naming the ranks that did not arrive', async () => {
    const body = `
      const { allReduce, waitForEveryone } = require('tslaunch');
      const rank = Number(process.env.RANK);
      if (rank !== 2) {
        const t0 = Date.now();
        const err = await allReduce(new Float32Array(8)).then(() => null, (e) => e);
        console.log('after ' + (Date.now() - t0) + ' ms: ' + (err && err.name) + ': ' + (err && err.message));
      }
    `;
    const { result, events } = await runLaunch({ numProcesses: 3, marker: leak.marker, body, options: { collectiveTimeout: 2 }, timeoutMs: 60_000 });
    expect(result.outcome, JSON.stringify(result.failures)).toBe('succeeded');
    for (const rank of [0, 1]) {
      const out = outputText(events, rank);
      const m = /after (\d+) ms: CollectiveError: (.*)/.exec(out);
      expect(m, `rank ${rank}: ${out}`).not.toBeNull();
      // The timeout runs from the first rank's arrival; this rank may have called a little later.
      expect(Number(m![1])).toBeGreaterThanOrEqual(1000);
      expect(Number(m![1])).toBeLessThan(10_000);
      expect(m![2]).toMatch(/allReduce/);
      expect(m![2]).toMatch(/rank 2\b/);
      expect(m![2]).not.toMatch(/rank(s)? (0|1)\b/);
    }
  }, 90_000);

  it('a rank killed mid-collective fails the launch within 2 s (not at the timeout), the report names it, and nothing is left in /dev/shm', async () => {
    const body = `
      const { allReduce } = require('tslaunch');
      const rank = Number(process.env.RANK);
      const x = new Float32Array(1 << 16);
      for (let i = 0; ; i++) {
        // Straight to fd 1 (the process pipe): the batched console path would die with the process.
        if (rank === 1 && i === 20) { require('fs').writeSync(1, 'dying ' + Date.now() + '\\n'); process.kill(process.pid, 'SIGKILL'); }
        try {
          await allReduce(x.fill(1));
        } catch (e) {
          console.error('caught ' + Date.now() + ' ' + e.name + ': ' + e.message);
          throw e;
        }
      }
    `;
    let diedAt = 0;
    let endedAt = 0;
    const { result, events } = await runLaunch({
      numProcesses: 3, marker: leak.marker, body, timeoutMs: 60_000,
      onEvent: (e) => {
        if (e.type === 'output' && /dying (\d+)/.test(e.text)) diedAt = Number(/dying (\d+)/.exec(e.text)![1]);
        if (e.type === 'done') endedAt = Date.now();
      },
    });
    expect(result.outcome).toBe('failed');
    expect(result.failures[0]).toMatchObject({ rank: 1, signal: 'SIGKILL' });
    expect(diedAt).toBeGreaterThan(0);
    expect(endedAt - diedAt).toBeLessThan(2000 + 1500 /* the stop's SIGTERM grace */);
    const caught = [0, 2].map((r) => outputText(events, r, 'stderr')).join('');
    if (caught) expect(caught).toMatch(/CollectiveError: .*rank 1\b/);
  }, 90_000);

  it('with max_restarts 1, a rank killed mid-collective restarts the group and the retried collective succeeds', async () => {
    const body = `
      const { allReduce, state } = require('tslaunch');
      const x = new Float32Array(1000).fill(state.processIndex + 1);
      if (state.restartCount === 0 && state.processIndex === 1) setTimeout(() => process.kill(process.pid, 'SIGKILL'), 50);
      for (let i = 0; i < (state.restartCount === 0 ? 1e9 : 3); i++) await allReduce(x.fill(state.processIndex + 1));
      console.log('sum ' + x[0] + ' restart ' + state.restartCount);
    `;
    const { result, events } = await runLaunch({ numProcesses: 3, marker: leak.marker, body, options: { maxRestarts: 1 }, timeoutMs: 60_000 });
    expect(result).toMatchObject({ outcome: 'succeeded', restarts: 1 });
    for (let r = 0; r < 3; r++) expect(outputText(events, r)).toContain(`sum 6 restart 1\n`);
  }, 90_000);

  it('outside a launch every collective is the identity on one process', async () => {
    const child = spawnNode(['-e', `
      const t = require(${JSON.stringify(path.join(FIXTURES, '..', '..', 'dist', 'launcher', 'index.js'))});
      (async () => {
        const x = new Float32Array([1, 2]);
        const same = (await t.allReduce(x, 'mean')) === x;
        const g = await t.allGather(new Int32Array([3]));
        const s = await t.reduceScatter(new Float64Array([4, 5]), 'max');
        const o = await t.gatherObject({ a: 1 });
        const b = await t.broadcastObject('v');
        await t.waitForEveryone();
        const bad = await t.allReduce([1, 2]).then(() => 'no error', (e) => e.message);
        console.log(JSON.stringify({ same, x: Array.from(x), g: Array.from(g), s: Array.from(s), o, b, bad }));
      })();
    `], { env: childEnv(leak.tmp, leak.marker) });
    await withTimeout(child.exited, 20_000, 'the script');
    expect(JSON.parse(child.stdout())).toEqual({
      same: true, x: [1, 2], g: [3], s: [4, 5], o: [{ a: 1 }], b: 'v',
      bad: expect.stringMatching(/allReduce needs a Float32Array, Float64Array or Int32Array, got Array/),
    });
  }, 30_000);
});

describe('collectives across two nodes on loopback', () => {
  it('2 nodes x 2 ranks: the matrix passes on every rank of both nodes (shared memory within, TCP between)', async () => {
    const port = await freePort();
    const secret = 'collectives-test-secret';
    const agent: Child = spawnNode([CLI, 'agent', '--num_nodes', '2', '--node_rank', '1', '--master_addr', '127.0.0.1', '--use_port', String(port), '-n', '2', '--once'], {
      env: childEnv(leak.tmp, leak.marker, { TSLAUNCH_SECRET: secret }),
    });
    try {
      const body = `
        const m = require(${MATRIX});
        await m.run({ seed: 7, lengths: [0, 1, 3, 5, 1024], dtypes: ['f32', 'i32'] });
        await m.run({ seed: 8, lengths: [(1 << 20) + 3], dtypes: ['f32'], ops: ['sum'] });
      `;
      const { result, events } = await runLaunch({
        numProcesses: 2, marker: leak.marker, body, secret, options: { numNodes: 2, masterAddr: '127.0.0.1', usePort: port }, timeoutMs: 120_000,
      });
      expect(result.outcome, JSON.stringify(result.failures)).toBe('succeeded');
      expectAllOk(events, 4, 40);
      expect((await withTimeout(agent.exited, 15_000, 'the agent')).code).toBe(0);
    } finally {
      agent.kill('SIGKILL');
    }
  }, 180_000);
});

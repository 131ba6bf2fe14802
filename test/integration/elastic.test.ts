/**
 * Accelerate's fault-tolerance tests for notebook_launcher (test_notebook.py: test_fault_tolerant,
 * test_monitoring), translated to notebookLauncher from a plain Node script
 * (test/fixtures/elastic.js). A counter file plays the multiprocessing Queue: while it is above 0,
 * rank 0 decrements it and throws, so the first attempts fail.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { LaunchEvent } from '../../launcher/contract';
import { FIXTURES, childEnv, runLaunch, spawnNode, withTimeout, type Exit, useLeakChecks } from '../fixtures/support';

const leak = useLeakChecks('elastic', 'the script');

interface Run {
  exit: Exit;
  out: {
    ok: boolean; value?: unknown; name?: string; message?: string; traceback?: string[]; elapsedMs: number;
    restarts?: number; failures?: { rank: number; exitCode: number | null }[];
  };
  stderr: string;
  dir: string;
  totalMs: number;
}

async function runElastic(scenario: string, env: Record<string, string>, counter?: number): Promise<Run> {
  const dir = leak.tmp.scratch(scenario);
  if (counter !== undefined) fs.writeFileSync(path.join(dir, 'counter'), String(counter));
  const outFile = path.join(dir, 'out.json');
  const t0 = performance.now();
  const child = spawnNode([path.join(FIXTURES, 'elastic.js')], {
    env: childEnv(leak.tmp, leak.marker, { FIXTURE_SCENARIO: scenario, FIXTURE_OUT: outFile, FIXTURE_DIR: dir, CUDA_VISIBLE_DEVICES: '', ...env }),
  });
  let exit: Exit;
  try {
    exit = await withTimeout(child.exited, 90_000, `elastic.js ${scenario}`);
  } finally {
    child.kill('SIGKILL');
  }
  const totalMs = performance.now() - t0;
  expect(fs.existsSync(outFile), `no result.\nstdout:\n${child.stdout()}\nstderr:\n${child.stderr()}`).toBe(true);
  return { exit, out: JSON.parse(fs.readFileSync(outFile, 'utf8')), stderr: child.stderr(), dir, totalMs };
}

const restartLines = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('[tslaunch] ') && l.includes('restart'));

describe('fault tolerance (max_restarts)', () => {
  it('succeeds with maxRestarts 3 when the first 3 attempts fail; every attempt is a new world with TORCHELASTIC_RESTART_COUNT 0..3', async () => {
    const n = 2;
    const { exit, out, stderr, dir } = await runElastic('tough-nut', { FIXTURE_MAX_RESTARTS: '3', FIXTURE_NUM_PROCESSES: String(n) }, 3);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(out.ok, JSON.stringify(out)).toBe(true);
    expect(out.value).toEqual([0, 1].map((rank) => ({ rank, restartCount: 3, pid: expect.any(Number) })));
    expect(fs.readFileSync(path.join(dir, 'counter'), 'utf8')).toBe('0');

    expect(restartLines(stderr)).toEqual([1, 2, 3].map((k) => `[tslaunch] worker group failed: rank 0 exited with code 1; restart ${k}/3`));

    const log = fs.readFileSync(path.join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { rank: number; pid: number; restartCount: number; env: string });
    // 4 attempts x 2 ranks, each attempt with its restart count, each process new.
    expect(log).toHaveLength(4 * n);
    for (let attempt = 0; attempt <= 3; attempt++) {
      const ranks = log.filter((e) => e.restartCount === attempt).map((e) => e.rank).sort();
      expect(ranks, `attempt ${attempt}`).toEqual([0, 1]);
    }
    for (const e of log) expect(e.env).toBe(String(e.restartCount));
    expect(new Set(log.map((e) => e.pid)).size).toBe(4 * n);
    const finalPids = (out.value as { pid: number }[]).map((v) => v.pid);
    expect(finalPids.every((p) => log.some((e) => e.pid === p && e.restartCount === 3))).toBe(true);
  }, 90_000);

  it('fails with maxRestarts 2 when the first 3 attempts fail, with one report naming the rank and the restarts', async () => {
    const { exit, out, stderr, dir } = await runElastic('tough-nut', { FIXTURE_MAX_RESTARTS: '2', FIXTURE_NUM_PROCESSES: '2' }, 3);
    expect(exit.code).toBe(0); // the script caught the rejection
    expect(out.ok).toBe(false);
    expect(out.name).toBe('LaunchError');
    expect(out.message).toBe("rank 0 failed first (exit code 1): Error: The nut hasn't cracked yet! Try again.");
    const report = out.traceback!.join('\n');
    expect(report).toContain("LaunchError: rank 0 failed first (exit code 1): Error: The nut hasn't cracked yet! Try again.");
    expect(report).toContain('The worker group was restarted 2 times before this.');
    expect(out.restarts).toBe(2);
    expect(out.failures![0]).toMatchObject({ rank: 0, exitCode: 1 });
    expect(restartLines(stderr)).toEqual([1, 2].map((k) => `[tslaunch] worker group failed: rank 0 exited with code 1; restart ${k}/2`));
    expect(fs.readFileSync(path.join(dir, 'counter'), 'utf8')).toBe('0');
  }, 90_000);
});

describe('fault tolerance seen through Launch events', () => {
  it('emits one `restarting` event per restart and starts every attempt with new processes and its restart count', async () => {
    const dir = leak.tmp.scratch('launch-counter');
    const counter = path.join(dir, 'counter');
    fs.writeFileSync(counter, '3');
    const body = `
      const fs = require('fs');
      if (process.env.RANK === '0') {
        const trial = Number(fs.readFileSync(${JSON.stringify(counter)}, 'utf8'));
        if (trial > 0) {
          fs.writeFileSync(${JSON.stringify(counter)}, String(trial - 1));
          process.exit(1);
        }
      }
      console.log('attempt ' + process.env.TORCHELASTIC_RESTART_COUNT);
    `;
    const n = 3;
    const { result, events } = await runLaunch({ numProcesses: n, marker: leak.marker, body, options: { maxRestarts: 3 } });
    expect(result).toMatchObject({ outcome: 'succeeded', restarts: 3, failures: [] });
    const restarting = events.filter((e): e is Extract<LaunchEvent, { type: 'restarting' }> => e.type === 'restarting');
    expect(restarting).toEqual([1, 2, 3].map((k) => ({
      type: 'restarting', restartCount: k, maxRestarts: 3, reason: 'worker group failed: rank 0 exited with code 1',
    })));
    const started = events.filter((e): e is Extract<LaunchEvent, { type: 'started' }> => e.type === 'started');
    expect(started).toHaveLength(4 * n);
    for (let k = 0; k <= 3; k++) expect(started.filter((e) => e.restartCount === k).map((e) => e.rank), `attempt ${k}`).toEqual([0, 1, 2]);
    expect(new Set(started.map((e) => e.pid)).size).toBe(4 * n);
    // Each `restarting` event comes between the attempts' `started` events.
    const order = events.filter((e) => e.type === 'restarting' || (e.type === 'started' && e.rank === 0)).map((e) => e.type === 'restarting' ? `R${e.restartCount}` : `S${(e as { restartCount: number }).restartCount}`);
    expect(order).toEqual(['S0', 'R1', 'S1', 'R2', 'S2', 'R3', 'S3']);
    const last = events.filter((e) => e.type === 'output').map((e) => (e as { text: string }).text).join('');
    for (let r = 0; r < n; r++) expect(last).toContain(`[rank${r}]: attempt 3\n`);
  }, 60_000);
});

describe('monitoring (monitor_interval)', () => {
  it('with monitorInterval 0.01, even ranks failing and odd ranks sleeping 100 s: the error comes in under 5 s and no worker survives', async () => {
    const { out, totalMs } = await runElastic('bipolar', { FIXTURE_NUM_PROCESSES: '4' });
    expect(out.ok).toBe(false);
    expect(out.name).toBe('LaunchError');
    expect(out.message).toMatch(/^rank [02] failed first \(exit code 1\): Error: I'm an even process\. I don't like to sleep\.$/);
    expect(out.elapsedMs).toBeLessThan(5000);
    expect(totalMs).toBeLessThan(15_000);
    // afterEach: no process with this test's marker (the sleeping odd ranks included) is left.
  }, 60_000);
});

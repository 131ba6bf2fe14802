/**
 * A flood that the frontend may only receive slowly (issue 11, item 12): the backlog waiting in the
 * kernel is bounded (TSLAUNCH_OUTPUT_MEMORY; the rest goes to an unlinked file on disk), the cell says
 * so, and every line still arrives in order. Through a real Jupyter server; the kernel's pace is
 * set with TSLAUNCH_IOPUB_RATE_LIMIT so the test takes seconds, not minutes.
 */
import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCell } from '../helpers/jupyter-server';
import { NO_IOPUB_RATE_LIMIT, linesByRank, setupE2E, useKernel, type E2E } from './setup';

let e2e: E2E;
const MEMORY = 1_000_000;

beforeAll(async () => {
  // TSLAUNCH_OUTPUT_LIMIT=0: the backlog test wants every line in the cell; the limit test sets its own.
  e2e = await setupE2E({ env: { TSLAUNCH_IOPUB_RATE_LIMIT: '2000000', TSLAUNCH_OUTPUT_MEMORY: String(MEMORY), TSLAUNCH_OUTPUT_LIMIT: '0' }, extraArgs: NO_IOPUB_RATE_LIMIT });
}, 90_000);

afterAll(async () => {
  await e2e?.stop();
}, 60_000);

function rssMiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}

describe('a paced backlog is bounded in kernel memory', () => {
  const k = useKernel(() => e2e);

  it('4 ranks x 200 000 lines (~12 MB at 2 MB/s): the cell says output waits on disk, every line arrives in order (the bound itself: test/unit/output-pacer)', async () => {
    await runCell(k.kernel(), '1 + 1'); // the kernel is warm: what grows now is the launch's
    const before = rssMiB(k.pid());
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rssMiB(k.pid()))), 50);
    let r;
    try {
      r = await runCell(k.kernel(), '%%launch -n 4\nfor (let i = 0; i < 200000; i++) console.log(i);', { timeoutMs: 120_000 });
    } finally {
      clearInterval(sampler);
    }
    expect(r.reply.content.status).toBe('ok');
    expect(r.stderr).toMatch(/^tslaunch: output arrives faster than the frontend may receive it .* waits on disk .* Nothing is lost\.\n$/);
    const { byRank, unprefixed } = linesByRank(r.stdout);
    expect(unprefixed).toEqual([]);
    for (const rank of [0, 1, 2, 3]) {
      const lines = byRank.get(rank)!;
      expect(lines.length).toBe(200_000);
      expect(lines.findIndex((l, i) => l !== String(i))).toBe(-1);
    }
    // For the record (V8's garbage from 12 MB of strings dominates it; the backlog is bounded).
    console.log(`backlog test: kernel RSS ${before.toFixed(0)} MiB -> peak ${peak.toFixed(0)} MiB`);
  }, 180_000);

  it('--output_limit: past it the cell stops showing output, says so once with the log folder, and ends with the ranks; the files hold every line', async () => {
    const t0 = Date.now();
    const r = await runCell(k.kernel(), '%%launch -n 2 --output_limit 200KB\nfor (let i = 0; i < 30000; i++) console.log("line " + i);', { timeoutMs: 60_000 });
    expect(r.reply.content.status).toBe('ok');
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(r.stdout.length).toBeLessThan(220_000);
    const notice = /\[tslaunch\] the cell has shown 0\.2 MB of the ranks' output \(--output_limit, TSLAUNCH_OUTPUT_LIMIT\); the rest goes only to (\S+)\/<rank>\/stdout\.log and stderr\.log, which hold every line/.exec(r.stderr);
    expect(notice, r.stderr).not.toBeNull();
    expect(r.stderr.match(/the cell has shown/g)).toHaveLength(1);
    const dir = notice![1];
    try {
      for (const rank of [0, 1]) {
        const lines = fs.readFileSync(`${dir}/${rank}/stdout.log`, 'utf8').split('\n').filter(Boolean);
        expect(lines).toHaveLength(30_000);
        expect(lines.findIndex((l, i) => l !== `line ${i}`)).toBe(-1);
      }
    } finally {
      fs.rmSync(dir.replace(/\/none\/attempt_1$/, ''), { recursive: true, force: true });
    }
  }, 120_000);
});

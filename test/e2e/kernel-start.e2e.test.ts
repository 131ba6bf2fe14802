/**
 * A kernel started and left alone loads its language service in the background (kernel/main.ts):
 * after a quiet second, its modules, then the declaration files one per step
 * (kernel/cells/declaration-preparse.ts), then the service. Through a real Jupyter server: the
 * first cell finds the files parsed and taken by every program, and is_complete (which jupyter
 * console gives up on after 1 s unanswered) is answered quickly throughout.
 */
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCell } from '../helpers/jupyter-server';
import { sleep } from '../helpers/leftovers';
import { setupE2E, useKernelsPerTest, type E2E } from './setup';

let e2e: E2E;

beforeAll(async () => {
  e2e = await setupE2E();
}, 90_000);

afterAll(async () => {
  await e2e?.stop();
}, 60_000);

const newKernel = useKernelsPerTest(() => e2e);

const STATS_MODULE = path.join(__dirname, '..', '..', 'dist', 'kernel', 'cells', 'cell-compiler-options.js');
const STATS_CELL = `JSON.stringify(require(${JSON.stringify(STATS_MODULE)}).declarationPreparseStats())`;

const SESSION_MODULE = path.join(__dirname, '..', '..', 'dist', 'kernel', 'cells', 'session.js');
const WARM_UP_CELL = `require(${JSON.stringify(SESSION_MODULE)}).warmUpCount()`;

function statsOf(r: Awaited<ReturnType<typeof runCell>>): { parsed: number; hits: number; misses: number } {
  expect(r.reply.content.status, JSON.stringify(r.outputs).slice(0, 2000)).toBe('ok');
  const out = r.outputs.find((o) => o.output_type === 'execute_result') as { data: Record<string, string> } | undefined;
  return JSON.parse(out!.data['text/plain']);
}

describe('a kernel left alone after start', () => {
  it('parses the declaration files ahead, and the first cell\'s program takes every one of them', async () => {
    const { kernel } = await newKernel();
    // Quiet 1 s, then modules (~0.6 s) and ~150 files one per step; generous for a loaded machine.
    await sleep(8000);
    const stats = statsOf(await runCell(kernel, STATS_CELL));
    expect(stats.parsed).toBeGreaterThan(50); // lib.es2022 and its parts, @types/node and what it references
    expect(stats.misses).toBe(0);
    expect(stats.hits).toBeGreaterThanOrEqual(stats.parsed);
    // Each later program (one per new cell) takes them again, by path too: none is parsed twice.
    expect((await runCell(kernel, 'const later: string[] = ["a"]; later.length')).reply.content.status).toBe('ok');
    const after = statsOf(await runCell(kernel, STATS_CELL));
    expect(after.parsed).toBe(stats.parsed);
    expect(after.hits - stats.hits).toBeGreaterThanOrEqual(stats.parsed);
    expect(after.misses).toBe(0);
  }, 60_000);

  it('compiles a few typical cells while quiet, and they leave nothing behind: no declaration, no output', async () => {
    const { kernel } = await newKernel();
    await sleep(8000);
    const count = await runCell(kernel, WARM_UP_CELL);
    expect(JSON.stringify(count.outputs)).toContain('"text/plain":"3"');
    const leaked = await runCell(kernel, 'typeof warmUpRows');
    expect(leaked.reply.content.status).toBe('error');
    expect(JSON.stringify(leaked.reply.content)).toContain("Cannot find name 'warmUpRows'");
    const r = await runCell(kernel, '1 + 1');
    expect(r.outputs).toEqual([{ output_type: 'execute_result', execution_count: expect.any(Number), data: { 'text/plain': '2' }, metadata: {} }]);
  }, 60_000);

  it('answers is_complete within a second all through the background load', async () => {
    const { kernel } = await newKernel();
    await sleep(1500); // quiet for a second: the load has begun
    const latencies: number[] = [];
    const until = Date.now() + 4000;
    while (Date.now() < until) {
      const t = Date.now();
      const reply = await kernel.requestIsComplete({ code: 'for (let i = 0; i < 3; i++) {' });
      latencies.push(Date.now() - t);
      expect(reply.content.status).toBe('incomplete');
      await sleep(50);
    }
    expect(Math.max(...latencies), `is_complete latencies (ms): ${latencies.join(' ')}`).toBeLessThan(1000);
    // It did load meanwhile, and a cell runs.
    const stats = statsOf(await runCell(kernel, STATS_CELL));
    expect(stats.parsed).toBeGreaterThan(0);
  }, 60_000);

  it('a cell sent at once does not wait for the declarations to be parsed ahead: the service parses the rest', async () => {
    const { kernel } = await newKernel();
    const stats = statsOf(await runCell(kernel, STATS_CELL));
    expect(stats.misses).toBe(0);
    // Nor for the warm-up cells, which a background load compiles.
    expect(JSON.stringify((await runCell(kernel, WARM_UP_CELL)).outputs)).toContain('"text/plain":"0"');
    const r = await runCell(kernel, 'const n: number = [1, 2, 3].reduce((a, b) => a + b); n');
    expect(r.reply.content.status).toBe('ok');
  }, 60_000);
});

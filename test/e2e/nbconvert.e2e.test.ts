/**
 * Notebooks executed headless by Debian's nbconvert on the installed tslaunch kernelspec, as CI
 * would run them.
 */
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeNotebook, multiline, nbconvertExecute, normalizeOutputs } from '../helpers/jupyter-server';
import { KERNEL_NAME, REPO_ROOT, linesByRank, setupKernelEnv, type KernelEnv } from './setup';

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

function streamText(outputs: Array<Record<string, unknown>>, name: 'stdout' | 'stderr'): string {
  return normalizeOutputs(outputs)
    .filter((o) => o.output_type === 'stream' && o.name === name)
    .map((o) => multiline(o.text))
    .join('');
}

describe('nbconvert --execute on the tslaunch kernel', () => {
  it('runs notebooks/01-hello-launch.ipynb: every rank\'s prefixed lines and rank 0\'s display are in the saved notebook', async () => {
    const t0 = Date.now();
    const r = await nbconvertExecute({
      notebook: path.join(REPO_ROOT, 'notebooks', '01-hello-launch.ipynb'),
      kernelName: KERNEL_NAME,
      jupyterPath: [env.spec.jupyterDir],
      timeoutS: 60,
      env: env.childEnv,
    });
    console.log(`01-hello-launch.ipynb: nbconvert took ${Date.now() - t0} ms`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.executed).toBeDefined();
    const code = r.executed!.cells.filter((c) => c.cell_type === 'code');
    for (const c of code) {
      expect(c.outputs?.filter((o) => o.output_type === 'error'), multiline(c.source)).toEqual([]);
    }

    const launch = code.find((c) => multiline(c.source).startsWith('%%launch -n 4'))!;
    expect(launch).toBeDefined();
    const { byRank, unprefixed } = linesByRank(streamText(launch.outputs!, 'stdout'));
    expect(unprefixed).toEqual([]);
    expect([...byRank.keys()].sort()).toEqual([0, 1, 2, 3]);
    for (const [rank, lines] of byRank) {
      expect(lines[0]).toMatch(new RegExp(`^pid \\d+ on .+: rank ${rank} of 4 trains on \\w+$`));
      expect(lines.slice(1).map((l) => l.replace(/=.*/, ''))).toEqual(['step 0 loss', 'step 1 loss', 'step 2 loss']);
    }
    // (the launch's own live view is a display too, with its own MIME type: not counted here)
    const displays = normalizeOutputs(launch.outputs).filter(
      (o) => o.output_type === 'display_data' && !Object.keys(o.data as object).some((m) => m.startsWith('application/vnd.tslaunch')),
    );
    expect(displays).toHaveLength(1);
    expect((displays[0].data as Record<string, string>)['text/html']).toContain('<b>rank 0</b> finished');

    const custom = code.find((c) => multiline(c.source).includes('--log_line_prefix_template'))!;
    expect(streamText(custom.outputs!, 'stdout').split('\n').filter(Boolean).sort()).toEqual([
      '[default:0/0] mixed precision: no',
      '[default:1/1] mixed precision: no',
    ]);
  }, 150_000);

  it('a notebook whose launch fails makes nbconvert exit non-zero and shows the LaunchError', async () => {
    const nb = makeNotebook(
      [
        'const answer = 42;',
        '%%launch -n 2\nif (process.env.RANK === "1") {\n  throw new Error("nb launch fails");\n}\nconsole.log("answer", answer);',
        'console.log("after the launch");',
      ],
      KERNEL_NAME,
      'typescript',
    );
    const r = await nbconvertExecute({ notebook: nb, kernelName: KERNEL_NAME, jupyterPath: [env.spec.jupyterDir], timeoutS: 60, env: env.childEnv });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('LaunchError');
    expect(r.stderr).toContain('nb launch fails');

    // With --allow-errors the notebook is saved: the failing cell holds one LaunchError, the next cell ran.
    const tolerated = await nbconvertExecute({
      notebook: nb,
      kernelName: KERNEL_NAME,
      jupyterPath: [env.spec.jupyterDir],
      timeoutS: 60,
      allowErrors: true,
      env: env.childEnv,
    });
    expect(tolerated.code, tolerated.stderr).toBe(0);
    const cells = tolerated.executed!.cells;
    const errors = cells[1].outputs!.filter((o) => o.output_type === 'error');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ ename: 'LaunchError', evalue: 'rank 1 failed first (exit code 1): Error: nb launch fails' });
    expect((errors[0].traceback as string[]).join('\n')).toContain(`at cell [2], line 3`);
    expect(streamText(cells[2].outputs!, 'stdout')).toBe('after the launch\n');
  }, 150_000);
});

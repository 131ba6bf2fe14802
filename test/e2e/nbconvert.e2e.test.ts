/**
 * Notebooks executed headless by Debian's nbconvert on the installed tslaunch kernelspec, as CI
 * would run them.
 */
import * as fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeNotebook, multiline, nbconvertExecute, normalizeOutputs, type NotebookJson } from '../helpers/jupyter-server';
import { KERNEL_NAME, REPO_ROOT, linesByRank, useKernelEnv } from './setup';

const kernelEnv = useKernelEnv();

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
      jupyterPath: [kernelEnv().spec.jupyterDir],
      timeoutS: 60,
      env: kernelEnv().childEnv,
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
    const r = await nbconvertExecute({ notebook: nb, kernelName: KERNEL_NAME, jupyterPath: [kernelEnv().spec.jupyterDir], timeoutS: 60, env: kernelEnv().childEnv });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('LaunchError');
    expect(r.stderr).toContain('nb launch fails');

    // With --allow-errors the notebook is saved: the failing cell holds one LaunchError, the next cell ran.
    const tolerated = await nbconvertExecute({
      notebook: nb,
      kernelName: KERNEL_NAME,
      jupyterPath: [kernelEnv().spec.jupyterDir],
      timeoutS: 60,
      allowErrors: true,
      env: kernelEnv().childEnv,
    });
    expect(tolerated.code, tolerated.stderr).toBe(0);
    const cells = tolerated.executed!.cells;
    const errors = cells[1].outputs!.filter((o) => o.output_type === 'error');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ ename: 'LaunchError', evalue: 'rank 1 failed first (exit code 1): Error: nb launch fails' });
    expect((errors[0].traceback as string[]).join('\n')).toContain(`at cell [2], line 3`);
    expect(streamText(cells[2].outputs!, 'stdout')).toBe('after the launch\n');
  }, 150_000);
  it('a launch whose TMPDIR fills up ends with a LaunchSetupError naming the step and the folder (never a busy cell), and one in a very long TMPDIR runs', async () => {
    // A 1 MiB tmpfs that the first cell fills (a full disk). Mounting needs root, as CI runs.
    const full = fs.mkdtempSync(path.join(kernelEnv().tmp, 'full-'));
    const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', full], { encoding: 'utf8' });
    expect(mount.status, `mounting a tmpfs needs root: ${mount.stderr}`).toBe(0);
    try {
      const nb = makeNotebook(
        [
          "const fs = require('fs'); const os = require('os');\ntry { for (let i = 0; ; i++) fs.writeFileSync(os.tmpdir() + '/fill' + i, Buffer.alloc(16384)); } catch (e) { console.log('filled: ' + e.code); }",
          '%%launch -n 2\nconsole.log("never")',
          'console.log("after the launch");',
        ],
        KERNEL_NAME,
        'typescript',
      );
      const r = await nbconvertExecute({
        notebook: nb, kernelName: KERNEL_NAME, jupyterPath: [kernelEnv().spec.jupyterDir], timeoutS: 30, allowErrors: true, env: { ...kernelEnv().childEnv, TMPDIR: full },
      });
      expect(r.code, r.stderr).toBe(0);
      const cells = r.executed!.cells;
      expect(streamText(cells[0].outputs!, 'stdout')).toBe('filled: ENOSPC\n');
      const errors = cells[1].outputs!.filter((o) => o.output_type === 'error');
      expect(errors).toHaveLength(1);
      expect(errors[0].ename).toBe('LaunchSetupError');
      expect(errors[0].evalue).toMatch(new RegExp(`^cannot write the launch's payload .* in ${full}: ENOSPC: no space left on device.*Nothing was started\\. The disk holding ${full} is full`));
      expect(streamText(cells[2].outputs!, 'stdout')).toBe('after the launch\n');
      expect(fs.readdirSync(full).filter((f) => !f.startsWith('fill'))).toEqual([]);
    } finally {
      spawnSync('umount', ['-l', full]);
      fs.rmSync(full, { recursive: true, force: true });
    }

    // A TMPDIR so long that an ipc socket path in it would not fit (sun_path is 108 bytes).
    const long = path.join(kernelEnv().tmp, 'x'.repeat(100 - kernelEnv().tmp.length));
    fs.mkdirSync(long);
    try {
      const nb = makeNotebook(['const where = "long";', '%%launch -n 2\nconsole.log("ran in the " + where + " TMPDIR")'], KERNEL_NAME, 'typescript');
      const r = await nbconvertExecute({ notebook: nb, kernelName: KERNEL_NAME, jupyterPath: [kernelEnv().spec.jupyterDir], timeoutS: 30, env: { ...kernelEnv().childEnv, TMPDIR: long } });
      expect(r.code, r.stderr).toBe(0);
      const { byRank } = linesByRank(streamText(r.executed!.cells[1].outputs!, 'stdout'));
      expect([...byRank.entries()].sort()).toEqual([[0, ['ran in the long TMPDIR']], [1, ['ran in the long TMPDIR']]]);
      expect(fs.readdirSync(long)).toEqual([]);
    } finally {
      fs.rmSync(long, { recursive: true, force: true });
    }
  }, 150_000);
});

const NOTEBOOKS_DIR = path.join(REPO_ROOT, 'notebooks');
const NOTEBOOKS = fs.readdirSync(NOTEBOOKS_DIR).filter((f) => f.endsWith('.ipynb')).sort();
const LAUNCH_VIEW_MIME = 'application/vnd.tslaunch.launch.v1+json';

/** What the example notebooks create in os.tmpdir() (the kernels' private TMPDIR here) and must remove again. */
const DEMO_LEFTOVERS = ['fake-accel-demo', 'elastic-demo-attempts.txt'];

type Cell = NotebookJson['cells'][number];

/** The one code cell whose source starts with `start`. */
function cellStarting(cells: Cell[], start: string): Cell {
  const found = cells.filter((c) => multiline(c.source).startsWith(start));
  expect(found, `cells starting ${JSON.stringify(start)}`).toHaveLength(1);
  return found[0];
}

/** The launch views (live display, final state after update_display_data) saved in a cell. */
function launchViews(cell: Cell): Array<{ model: { state: string; restarts: number; ranks: Array<{ state: string; exitCode: number | null }> }; text: string }> {
  return normalizeOutputs(cell.outputs)
    .filter((o) => o.output_type === 'display_data' && LAUNCH_VIEW_MIME in (o.data as object))
    .map((o) => {
      const data = o.data as Record<string, unknown>;
      return { model: data[LAUNCH_VIEW_MIME] as never, text: String(data['text/plain']) };
    });
}

/** Per notebook: what its saved outputs must show beyond "no error". */
const NOTEBOOK_CHECKS: Record<string, (cells: Cell[]) => void> = {
  '01-hello-launch.ipynb': (cells) => {
    const launch = cellStarting(cells, '%%launch -n 4');
    const views = launchViews(launch);
    // One view, updated in place: nbconvert applied the final update_display_data to the saved output.
    expect(views).toHaveLength(1);
    const lines = views[0].text.split('\n');
    const header = lines.filter((l) => l.startsWith('tslaunch: 4 ranks on 1 node'));
    expect(header, views[0].text).toHaveLength(1);
    expect(header[0]).toMatch(/^tslaunch: 4 ranks on 1 node \(static\), succeeded, \d+\.\d s, restarts 0\/0$/);
    const rows = lines.filter((l) => /^\s+rank \d/.test(l));
    expect(rows).toHaveLength(4);
    for (const row of rows) expect(row).toMatch(/^\s+rank \d\s+node 0\s+pid \d+\s+succeeded\s+\d+\.\d s\s+exit 0$/);
    expect(views[0].model.state).toBe('succeeded');
    expect(views[0].model.ranks.map((r) => r.state)).toEqual(['succeeded', 'succeeded', 'succeeded', 'succeeded']);

    const custom = cellStarting(cells, '%%launch --num_processes 2');
    const customViews = launchViews(custom);
    expect(customViews).toHaveLength(1);
    expect(customViews[0].text).toMatch(/^tslaunch: 2 ranks on 1 node \(static\), succeeded,/);
  },
  '02-function-api.ipynb': (cells) => {
    const call = cellStarting(cells, 'const data = Array.from');
    const out = streamText(call.outputs!, 'stdout');
    expect(out).toContain('total: 9900\n'); // 2 * (0 + 1 + ... + 99)
    const { byRank } = linesByRank(out);
    expect([...byRank.keys()].sort()).toEqual([0, 1, 2, 3]);
    for (const [rank, lines] of byRank) expect(lines, `rank ${rank}`).toContain(`rank ${rank}/4 (bf16) summed 25 values`);
    expect(launchViews(call).map((v) => v.model.state)).toEqual(['succeeded']);

    const debug = cellStarting(cells, 'await debugLauncher');
    const result = normalizeOutputs(debug.outputs).find((o) => o.output_type === 'execute_result');
    expect(String((result?.data as Record<string, unknown> | undefined)?.['text/plain'])).toMatch(/rank: 0, device: 'cpu', cpuOnly: 'yes'[\s\S]*rank: 1, device: 'cpu', cpuOnly: 'yes'/);

    const bad = cells[cells.length - 1];
    expect(streamText(bad.outputs!, 'stdout')).toMatch(/^mixedPrecision must be one of no, fp16, bf16, fp8, got "fp64"/);
    expect(launchViews(bad)).toEqual([]);
  },
  '05-data-parallel-training.ipynb': (cells) => {
    // %%launch -n 2: rank 0 prints 100 steps of a falling global loss, then the held-out accuracy.
    const launch = cellStarting(cells, '%%launch -n 2\n');
    const out = streamText(launch.outputs!, 'stdout');
    const losses = [...out.matchAll(/^\[rank0\]: step +(\d+) +loss (\d+\.\d+)$/gm)].map((m) => [Number(m[1]), Number(m[2])]);
    expect(losses.map(([step]) => step)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(losses[99][1]).toBeLessThan(losses[0][1] / 10);
    expect(out).not.toMatch(/^\[rank1\]: step/m); // print() is rank 0's
    const accuracy = Number(/accuracy on the held-out set: (\d+\.\d) %/.exec(out)?.[1]);
    expect(accuracy).toBeGreaterThan(80);
    expect(launchViews(launch).map((v) => v.model.state)).toEqual(['succeeded']);
    // 1, 2 and 4 ranks: the same curve (|Δ| <= 1e-4 over 100 steps), weights bitwise equal on every rank.
    const compare = cellStarting(cells, '//%tslaunch:no-replay');
    const text = streamText(compare.outputs!, 'stdout');
    for (const n of [1, 2, 4]) {
      const m = new RegExp(`^${n} rank\\(s\\): final loss (\\d+\\.\\d+), max \\|Δloss\\| vs 1 rank over 100 steps ([\\d.e+-]+), weights equal on every rank after every step: (true|false)$`, 'm').exec(text);
      expect(m, `${n} ranks in:\n${text}`).not.toBeNull();
      expect(Number(m![2])).toBeLessThanOrEqual(1e-4);
      expect(m![3]).toBe('true');
    }
    const svg = normalizeOutputs(compare.outputs).find((o) => o.output_type === 'display_data' && 'image/svg+xml' in (o.data as object));
    expect(multiline((svg?.data as Record<string, string | string[]>)['image/svg+xml'])).toMatch(/^<svg[\s\S]*1 rank[\s\S]*2 ranks[\s\S]*4 ranks[\s\S]*<\/svg>\s*$/);
    // A rank killed at step 50 with --max_restarts 1: the group restarts (from the start) and finishes.
    const restart = cellStarting(cells, '%%launch -n 2 --max_restarts 1');
    expect(streamText(restart.outputs!, 'stderr')).toContain('[tslaunch] worker group failed: rank 1 was killed by SIGKILL; restart 1/1');
    expect(streamText(restart.outputs!, 'stdout')).toMatch(/^\[rank0\]: finished after 1 restart\(s\): final loss \d+\.\d+, accuracy \d+\.\d %$/m);
    expect(launchViews(restart).map((v) => [v.model.state, v.model.restarts])).toEqual([['succeeded', 1]]);
  },
  '03-elastic-restarts.ipynb': (cells) => {
    const launch = cellStarting(cells, '%%launch -n 3 --max_restarts 3');
    const err = streamText(launch.outputs!, 'stderr');
    expect(err).toContain('restart 1/3');
    expect(err).toContain('restart 2/3');
    expect(err).not.toContain('restart 3/3');
    const views = launchViews(launch);
    expect(views).toHaveLength(1);
    expect(views[0].model).toMatchObject({ state: 'succeeded', restarts: 2 });
    expect(views[0].text).toMatch(/^tslaunch: 3 ranks on 1 node \(static\), succeeded, .*restarts 2\/3/);

    const tooFew = cellStarting(cells, 'fs.writeFileSync(attemptsFile, "0");');
    expect(streamText(tooFew.outputs!, 'stdout')).toContain('simulated failure in attempt 2');
    expect(launchViews(tooFew).map((v) => v.model.state)).toEqual(['failed']);
  },
  '04-device-guard.ipynb': (cells) => {
    const probed = cellStarting(cells, '%%launch -n 2');
    expect(streamText(probed.outputs!, 'stderr')).toMatch(/^\[tslaunch\] ACCELERATE_DEBUG_MODE: the environment check passed in \d+ ms \(2 ranks/);
    expect(streamText(probed.outputs!, 'stdout').split('\n').filter(Boolean).sort()).toEqual(['[rank0]: square of my rank: 0', '[rank1]: square of my rank: 1']);

    const tries = cells.filter((c) => multiline(c.source).startsWith('try {'));
    expect(tries).toHaveLength(2);
    expect(streamText(tries[0].outputs!, 'stdout')).toMatch(
      /^An issue was found when verifying a stable environment for the notebook launcher: rank \d: replaying cell \[\d+\] failed in the worker: Error: this cell only works in the kernel/,
    );
    const touch = cells.find((c) => multiline(c.source).includes('fs.openSync(fakeDevice'))!;
    // In the kernels' private TMPDIR: the leftover check after this notebook looks in the right place.
    expect(streamText(touch.outputs!, 'stderr')).toContain(
      `tslaunch: this cell touched an accelerator in the kernel: opened ${path.join(fs.realpathSync(kernelEnv().tmp), 'fake-accel-demo', 'accel0')} (configured accelerator)`,
    );
    expect(streamText(tries[1].outputs!, 'stdout')).toMatch(
      new RegExp(`^cell \\[${touch.execution_count}\\] \\("const handle = fs.openSync\\(fakeDevice, \\\\"r\\\\"\\);"\\) opened \\S+/fake-accel-demo/accel0 \\(configured accelerator\\) in the kernel; .*nothing was started`),
    );
    expect(launchViews(tries[1])).toEqual([]);
  },
};

describe('every notebook in notebooks/ executes through nbconvert', () => {
  it('finds the example notebooks, and each has its checks here', () => {
    expect(NOTEBOOKS).toEqual(expect.arrayContaining(['01-hello-launch.ipynb', '02-function-api.ipynb', '03-elastic-restarts.ipynb', '04-device-guard.ipynb', '05-data-parallel-training.ipynb']));
    for (const name of NOTEBOOKS) expect(NOTEBOOK_CHECKS[name], `no checks for ${name}`).toBeDefined();
  });

  it.each(NOTEBOOKS)('%s runs without an error and shows what it demonstrates; nothing it made is left in TMPDIR', async (name) => {
    const t0 = Date.now();
    const r = await nbconvertExecute({
      notebook: path.join(NOTEBOOKS_DIR, name),
      kernelName: KERNEL_NAME,
      jupyterPath: [kernelEnv().spec.jupyterDir],
      timeoutS: 120,
      env: kernelEnv().childEnv,
    });
    console.log(`${name}: nbconvert took ${Date.now() - t0} ms`);
    expect(r.timedOut).toBe(false);
    expect(r.code, r.stderr.slice(-4000)).toBe(0);
    expect(r.executed).toBeDefined();
    const code = r.executed!.cells.filter((c) => c.cell_type === 'code');
    expect(code.length).toBeGreaterThan(0);
    code.forEach((c, i) => {
      expect(c.execution_count, `cell ${i} ran`).toBe(i + 1);
      expect(c.outputs?.filter((o) => o.output_type === 'error'), multiline(c.source)).toEqual([]);
    });
    NOTEBOOK_CHECKS[name]?.(code);
    for (const left of DEMO_LEFTOVERS) expect(fs.existsSync(path.join(kernelEnv().tmp, left)), `${left} left in TMPDIR by ${name}`).toBe(false);
  }, 300_000);
});

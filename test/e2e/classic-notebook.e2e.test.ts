/**
 * The classic Notebook (Debian's python3-notebook 6.4, its own server) in Debian's headless Chromium:
 * a `%%launch` cell's rank lines, the text summary updated in place to its final state and shown
 * once (the end note for update-dropping clients renders as nothing here), an ordinary cell, and
 * a failing launch's report.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port';
import { makeTempDir, removeDir } from '../helpers/kernelspec-fixture';
import { CHROMIUM, CHROMIUM_ARGS, notebookOf } from '../helpers/lab';
import { setupKernelEnv, type KernelEnv } from './setup';

// The failing launch is last: "run all" stops at the first error, as Jupyter does.
const CELLS = [
  'const greeting = "hello";',
  '%%launch -n 2\nconsole.log(greeting + " from rank " + process.env.RANK);',
  '6 * 7',
  '%%launch -n 2\nif (process.env.RANK === "1") throw new Error("rank one fails");',
];

let kernelEnv: KernelEnv;
let server: ChildProcess | undefined;
let root: string;
let profile: string;
let context: BrowserContext | undefined;
let page: Page;
let serverLog = '';

beforeAll(async () => {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`the classic Notebook test needs ${CHROMIUM} (apt-get install --no-install-recommends chromium)`);
  kernelEnv = setupKernelEnv();
  root = makeTempDir('tsl-classic-root-');
  profile = makeTempDir('tsl-chromium-');
  fs.writeFileSync(path.join(root, 'launch.ipynb'), JSON.stringify(notebookOf(CELLS), null, 1));
  const port = await freePort();
  const token = 'classic-test-token';
  server = spawn('/usr/bin/python3', ['-m', 'notebook', '--no-browser', `--port=${port}`, '--ip=127.0.0.1', `--NotebookApp.token=${token}`, `--notebook-dir=${root}`, '--NotebookApp.open_browser=False', '--allow-root'], {
    env: { ...kernelEnv.childEnv, JUPYTER_PATH: kernelEnv.spec.jupyterDir, JUPYTER_RUNTIME_DIR: path.join(root, '.runtime'), JUPYTER_CONFIG_DIR: path.join(root, '.config') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server.stdout!.on('data', (d) => (serverLog += d));
  server.stderr!.on('data', (d) => (serverLog += d));
  for (const deadline = Date.now() + 60_000; !serverLog.includes(`127.0.0.1:${port}`); ) {
    if (Date.now() > deadline || server.exitCode !== null) throw new Error(`the classic Notebook server did not start:\n${serverLog}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1280, height: 960 } });
  page = context.pages()[0] ?? (await context.newPage());
  await page.goto(`http://127.0.0.1:${port}/notebooks/launch.ipynb?token=${token}`);
  // The kernel is started and idle: Notebook 6's own objects say so.
  await page.waitForFunction(() => {
    const nb = (window as unknown as { Jupyter?: { notebook?: { kernel?: { is_connected(): boolean }; kernel_busy?: boolean } } }).Jupyter?.notebook;
    return !!nb?.kernel && nb.kernel.is_connected() && nb.kernel_busy === false;
  }, undefined, { timeout: 60_000, polling: 100 });
}, 120_000);

afterAll(async () => {
  await context?.close().catch(() => undefined);
  if (server && server.exitCode === null) {
    server.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 1500));
    if (server.exitCode === null) server.kill('SIGKILL');
  }
  await kernelEnv?.stop();
  if (root) removeDir(root);
  if (profile) removeDir(profile);
}, 60_000);

/** The text a user sees in each cell's output area. */
async function outputsText(): Promise<string[]> {
  return page.locator('#notebook-container .cell .output_wrapper').evaluateAll((nodes) => nodes.map((n) => (n as HTMLElement).innerText));
}

describe('the classic Notebook 6.4 in Chromium', () => {
  it('runs %%launch cells: rank lines, the summary once in its final state, an ordinary cell, a failure report', async () => {
    await page.evaluate(() => (window as unknown as { Jupyter: { notebook: { execute_all_cells(): void } } }).Jupyter.notebook.execute_all_cells());
    // Every cell ran (an execution count, not "*") and the kernel is idle again.
    await page.waitForFunction(
      (n) => {
        const nb = (window as unknown as { Jupyter: { notebook: { kernel_busy: boolean; get_cells(): { input_prompt_number?: unknown }[] } } }).Jupyter.notebook;
        const cells = nb.get_cells();
        return !nb.kernel_busy && cells.length === n && cells.every((c) => typeof c.input_prompt_number === 'number');
      },
      CELLS.length,
      { timeout: 90_000, polling: 200 },
    );
    await page.waitForTimeout(500); // the last display updates render
    const [, ok, after, failed] = await outputsText();
    const okLines = ok.split('\n').map((l) => l.trimEnd()).filter(Boolean);
    expect(okLines.filter((l) => l.startsWith('[rank')).sort()).toEqual(['[rank0]: hello from rank 0', '[rank1]: hello from rank 1']);
    // The summary is shown once, updated in place to its final state (not "starting", not twice).
    const summaries = okLines.filter((l) => l.startsWith('tslaunch: '));
    expect(summaries, ok).toHaveLength(1);
    expect(summaries[0]).toMatch(/^tslaunch: 2 ranks on 1 node \(static\), succeeded, \d+\.\d s, restarts 0\/0$/);
    expect(okLines.filter((l) => /^rank [01] +node 0 +pid \d+ +succeeded/.test(l.trim()))).toHaveLength(2);
    // The failing launch: its final summary once, and the report.
    expect(failed.split('\n').filter((l) => l.startsWith('tslaunch: ')).length, failed).toBe(1);
    expect(failed).toContain('failed');
    expect(failed).toContain('LaunchError: rank 1 failed first (exit code 1): Error: rank one fails');
    expect(after).toContain('42');
  }, 150_000);
});

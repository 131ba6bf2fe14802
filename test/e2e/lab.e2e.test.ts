/**
 * tslaunch's JupyterLab extension in a real JupyterLab (the 4.6 test app of test/lab/, served by
 * Debian's jupyterlab_server) driven in Debian's headless Chromium: the live launch view of a
 * `%%launch` cell, a failing rank, the Stop button, filtering the log by rank, and the text/plain
 * fallback when the extension is not installed. Screenshots go to docs/.
 *
 * Needs the kernel, the extension and the app built (see test/helpers/lab.ts); fails saying what is
 * missing otherwise.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { linesOfRank, ownerOf } from '../../labextension/src/log-filter';
import { formatDuration, formatExit, type RankRow } from '../../labextension/src/model';
import type { Locator } from 'playwright-core';
import { notebookOf, startLab, visibleLogLines, waitForCellDone, type Lab, type NotebookPage } from '../helpers/lab';
import { uninstallLabExtension } from '../../kernel/install/labextension-install';
import { REPO_ROOT } from './setup';

const DOCS = path.join(REPO_ROOT, 'docs');
const SHOTS = path.join(REPO_ROOT, 'build', 'lab-screenshots');
const HELLO = path.join(REPO_ROOT, 'notebooks', '01-hello-launch.ipynb');

const SHORT_SOURCE = '%%launch -n 2\nconsole.log("hello from", process.env.RANK);';

const FAILING_SOURCE = [
  '%%launch -n 3\nconst rank = Number(process.env.RANK);\nconsole.log("starting");\nif (rank === 1) {\n  console.log("giving up");\n  process.exit(3);\n}\nawait new Promise((resolve) => setTimeout(resolve, 300));\nconsole.log("done");',
].join('');

// Runs for 100 s unless stopped; a line from each rank every 250 ms (to see the filter follow new text).
const LONG_SOURCE =
  '%%launch -n 2\nconsole.log("ready");\nfor (let i = 0; i < 400; i++) {\n  console.log(`tick ${i}`);\n  await new Promise((resolve) => setTimeout(resolve, 250));\n}';

/** The hello notebook (cells 0-6) with the failing and the long launch appended: one kernel for all. */
const hello = JSON.parse(fs.readFileSync(HELLO, 'utf8')) as { cells: object[] };
const FAILING_CELL = hello.cells.length;
const LONG_CELL = FAILING_CELL + 1;
const SHORT_CELL = LONG_CELL + 1;
const extra = (notebookOf([FAILING_SOURCE, LONG_SOURCE, SHORT_SOURCE]) as { cells: Array<{ id: string }> }).cells.map((c, i) => ({ ...c, id: `lab-test-${i}` }));
const LAUNCHES = { ...hello, cells: [...hello.cells, ...extra] };



const VIEW = '.tslaunch-view';

/**
 * A PNG of `target` (the mouse moved away first: no hover highlight) into build/lab-screenshots/;
 * also into docs/ when docs/ lacks it or TSLAUNCH_UPDATE_SCREENSHOTS=1 (pids and times differ on
 * every run: the committed ones change only when asked to).
 */
async function screenshot(nb: NotebookPage, target: Locator, name: string): Promise<void> {
  fs.mkdirSync(SHOTS, { recursive: true });
  await nb.page.mouse.move(0, 0);
  const file = path.join(SHOTS, name);
  await target.screenshot({ path: file });
  const doc = path.join(DOCS, name);
  if (process.env.TSLAUNCH_UPDATE_SCREENSHOTS === '1' || !fs.existsSync(doc)) {
    fs.mkdirSync(DOCS, { recursive: true });
    fs.copyFileSync(file, doc);
  }
}

/** On failure: a screenshot of the page into build/lab-failures/ and the page's last errors on stderr. */
async function saveFailure(nb: NotebookPage, testName: string): Promise<void> {
  const dir = path.join(REPO_ROOT, 'build', 'lab-failures');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${testName.replace(/[^a-z0-9]+/gi, '-').slice(0, 80)}.png`);
  await nb.page.screenshot({ path: file, fullPage: true }).catch(() => undefined);
  console.error(`failure screenshot: ${file}\npage errors (last 10):\n${nb.errors.slice(-10).join('\n')}`);
}

/** The states of the rank rows of a view, in rank order. */
async function rankStates(nb: NotebookPage, cellIndex: number): Promise<string[]> {
  return nb.cell(cellIndex).locator(`${VIEW} tr.tslaunch-rank`).evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset.state ?? ''));
}

describe('launch view helpers', () => {
  const prefixes = [0, 1, 10].map((rank) => ({ rank, prefix: `[rank${rank}]: ` }));

  it('gives each line to the rank with the longest matching prefix', () => {
    expect(ownerOf('[rank1]: a', prefixes)).toBe(1);
    expect(ownerOf('[rank10]: a', prefixes)).toBe(10);
    expect(ownerOf('kernel says', prefixes)).toBeNull();
    const bare = [1, 10].map((rank) => ({ rank, prefix: String(rank) }));
    expect(ownerOf('10 x', bare)).toBe(10);
    expect(linesOfRank('[rank0]: a\n[rank1]: b\n[rank0]: c\nplain\n[rank0]: d', 0, prefixes)).toBe('[rank0]: a\n[rank0]: c\n[rank0]: d');
  });

  it('formats durations and exits', () => {
    expect(formatDuration(1234)).toBe('1.2 s');
    expect(formatDuration(125_000)).toBe('2:05');
    expect(formatDuration(3_725_000)).toBe('1:02:05');
    expect(formatDuration(null)).toBe('–');
    const row = { exitCode: 3, signal: null } as RankRow;
    expect(formatExit(row)).toBe('exit 3');
    expect(formatExit({ ...row, signal: 'SIGINT' })).toBe('SIGINT');
    expect(formatExit({ ...row, exitCode: null })).toBe('');
  });
});

describe('the tslaunch JupyterLab extension in Chromium', () => {
  let lab: Lab;
  let nb: NotebookPage;

  beforeAll(async () => {
    lab = await startLab({ notebooks: { 'launches.ipynb': LAUNCHES } });
    nb = await lab.openNotebook('launches.ipynb');
  }, 120_000);

  afterEach(async (ctx) => {
    try {
      if (ctx.task.result?.state === 'fail' && nb) await saveFailure(nb, ctx.task.name);
      await lab.kernelEnv.expectNothingLeft({ timeoutMs: 5000, label: 'the test' });
    } finally {
      await lab.kernelEnv.cleanUp();
    }
  }, 30_000);

  afterAll(async () => {
    try {
      await nb?.close();
      await lab?.shutdownKernels();
      await lab?.kernelEnv.expectNothingLeft({ timeoutMs: 5000, label: 'the kernels shutting down' });
    } finally {
      await lab?.stop();
    }
  }, 60_000);

  it('shows every rank of the hello notebook reaching succeeded, and filters the log by rank', async () => {
    // The hello notebook's cells: helpers (1, 2), the 4-rank launch (4), the 2-rank launch with a custom prefix (6).
    for (const i of [1, 2, 4, 6]) await nb.runCell(i);
    const launchCell = nb.cell(4);
    const view = launchCell.locator(VIEW);
    await launchCell.locator(`${VIEW}[data-state="succeeded"]`).waitFor({ timeout: 30_000 });
    expect(await rankStates(nb, 4)).toEqual(['succeeded', 'succeeded', 'succeeded', 'succeeded']);
    const header = await view.locator('.tslaunch-header').innerText();
    expect(header).toContain('4 ranks');
    expect(header).toContain('1 node');
    expect(header).toContain('restarts 0/0');
    expect(await view.locator('button.tslaunch-stop').isDisabled()).toBe(true);
    for (let r = 0; r < 4; r++) {
      const row = view.locator(`tr[data-rank="${r}"]`);
      expect(await row.locator('.tslaunch-col-exit').innerText()).toBe('exit 0');
      expect(await row.locator('.tslaunch-col-last').innerText()).toMatch(/^step 2 loss=/);
      expect(Number(await row.locator('.tslaunch-col-pid').innerText())).toBeGreaterThan(0);
    }
    // The view is shown instead of the text/plain summary.
    expect(await launchCell.locator('.jp-OutputArea-output[data-mime-type="text/plain"]').count()).toBe(0);
    // The second launch (custom prefix, 2 ranks) has its own view.
    await nb.cell(6).locator(`${VIEW}[data-state="succeeded"]`).waitFor({ timeout: 30_000 });
    expect(await rankStates(nb, 6)).toEqual(['succeeded', 'succeeded']);
    await screenshot(nb, view, 'launch-view.png');

    // Filter: rank 2's lines only, then everything again.
    await waitForCellDone(launchCell);
    await waitForCellDone(nb.cell(6));
    const all = await visibleLogLines(launchCell);
    for (let r = 0; r < 4; r++) expect(all.filter((l) => l.startsWith(`[rank${r}]: `)).length).toBe(4);
    await view.locator('tr[data-rank="2"]').click();
    await launchCell.locator('.tslaunch-filter-note:not([hidden])').waitFor({ timeout: 5000 });
    const only2 = await visibleLogLines(launchCell);
    expect(only2.length).toBe(4);
    for (const l of only2) expect(l).toMatch(/^\[rank2\]: /);
    expect(await view.locator('tr[data-rank="2"]').getAttribute('aria-selected')).toBe('true');
    await screenshot(nb, launchCell.locator('.jp-Cell-outputWrapper'), 'launch-view-filtered.png');
    await view.locator('tr[data-rank="2"]').click();
    expect(await visibleLogLines(launchCell)).toEqual(all);
    // The other launch's log is untouched by this view's filter.
    expect((await visibleLogLines(nb.cell(6))).length).toBeGreaterThanOrEqual(2);
  }, 90_000);

  it('shows a failing rank as failed, with its exit code', async () => {
    await nb.runCell(FAILING_CELL);
    const view = nb.cell(FAILING_CELL).locator(`${VIEW}[data-state="failed"]`);
    await view.waitFor({ timeout: 30_000 });
    const rank1 = view.locator('tr[data-rank="1"]');
    expect(await rank1.getAttribute('data-state')).toBe('failed');
    expect(await rank1.locator('.tslaunch-col-exit').innerText()).toBe('exit 3');
    expect(await rank1.locator('.tslaunch-col-last').innerText()).toBe('giving up');
    expect(await view.locator('.tslaunch-state').innerText()).toBe('failed');
    expect(await view.locator('.tslaunch-error').innerText()).toContain('rank 1 exited with code 3');
    // The other ranks were not left running.
    const others = (await rankStates(nb, FAILING_CELL)).filter((_, r) => r !== 1);
    expect(others).toHaveLength(2);
    for (const s of others) expect(['succeeded', 'stopped']).toContain(s);
    expect(await view.locator('button.tslaunch-stop').isDisabled()).toBe(true);
    await screenshot(nb, view, 'launch-view-failed.png');
  }, 60_000);

  it('Stop interrupts a running launch within 2 s; the filter follows new log lines', async () => {
    const { page } = nb;
    await nb.runCell(LONG_CELL);
    const cell = nb.cell(LONG_CELL);
    const view = cell.locator(VIEW);
    await view.waitFor({ timeout: 30_000 });
    await view.evaluate(
      (v) =>
        new Promise<void>((resolve) => {
          const ok = (): boolean => {
            const rows = [...v.querySelectorAll<HTMLTableRowElement>('tr.tslaunch-rank')];
            return rows.length === 2 && rows.every((r) => r.dataset.state === 'running' && /tick/.test(r.cells[7]?.textContent ?? ''));
          };
          const t = setInterval(() => ok() && (clearInterval(t), resolve()), 50);
        }),
    );
    expect(await view.getAttribute('data-state')).toBe('running');
    const stop = view.locator('button.tslaunch-stop');
    expect(await stop.isEnabled()).toBe(true);

    // The elapsed time ticks while the launch runs.
    const e1 = await view.locator('.tslaunch-elapsed').innerText();
    await page.waitForTimeout(600);
    expect(await view.locator('.tslaunch-elapsed').innerText()).not.toBe(e1);

    // Filter on rank 1 while lines keep coming: only rank 1's, and more of them later.
    await view.locator('tr[data-rank="1"]').click();
    const before = await visibleLogLines(cell);
    expect(before.length).toBeGreaterThan(0);
    await page.waitForTimeout(1200);
    const after = await visibleLogLines(cell);
    expect(after.length).toBeGreaterThan(before.length);
    for (const l of after) expect(l).toMatch(/^\[rank1\]: /);

    expect(lab.kernelEnv.workerPids()).toHaveLength(2);
    const t0 = Date.now();
    await stop.click();
    await cell.locator(`${VIEW}[data-state="interrupted"]`).waitFor({ timeout: 10_000 });
    const took = Date.now() - t0;
    console.log(`Stop -> "interrupted" in the view: ${took} ms`);
    expect(took).toBeLessThan(2000);
    expect(await view.locator('.tslaunch-state').innerText()).toBe('interrupted');
    expect(await stop.isDisabled()).toBe(true);
    await lab.kernelEnv.expectNothingLeft({ timeoutMs: 2000, label: 'Stop' });
    for (const s of await rankStates(nb, LONG_CELL)) expect(s).not.toBe('running');
    // Every rank's lines again once the filter is off.
    await view.locator('tr[data-rank="1"]').click();
    const all = await visibleLogLines(cell);
    expect(all.some((l) => l.startsWith('[rank0]: '))).toBe(true);
    await screenshot(nb, view, 'launch-view-interrupted.png');
  }, 60_000);

  it('without the extension (uninstalled), the page falls back to the text/plain summary', async () => {
    // The server lists the labextensions folder for every page load: uninstalling and reloading is
    // enough. The notebook's kernel keeps running across the reload.
    expect(uninstallLabExtension(lab.kernelEnv.spec.jupyterDir)).toBe(lab.extensionDir);
    await nb.reload();
    expect(await nb.page.evaluate(() => (window as unknown as { tslaunchTestApp: { federated: string[] } }).tslaunchTestApp.federated)).toEqual([]);
    await nb.runCell(SHORT_CELL);
    const cell = nb.cell(SHORT_CELL);
    const summary = cell.locator('.jp-OutputArea-output[data-mime-type="text/plain"]');
    await summary.filter({ hasText: 'tslaunch: 2 ranks on 1 node' }).waitFor({ timeout: 30_000 });
    await summary.filter({ hasText: 'succeeded' }).waitFor({ timeout: 30_000 });
    await waitForCellDone(cell);
    expect(await nb.page.locator(VIEW).count()).toBe(0);
    await expect.poll(async () => (await visibleLogLines(cell)).filter((l) => /^\[rank[01]\]: hello from [01]$/.test(l)).sort(), { timeout: 5000 }).toEqual([
      '[rank0]: hello from 0',
      '[rank1]: hello from 1',
    ]);
    await screenshot(nb, cell.locator('.jp-Cell-outputWrapper'), 'launch-view-text-fallback.png');
  }, 60_000);
});

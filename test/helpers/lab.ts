/**
 * A real JupyterLab in headless Chromium, for the browser tests of tslaunch's JupyterLab extension.
 *
 * - The frontend: the JupyterLab 4.6 test app that test/lab/build.js bundles into test/lab/app/
 *   (npm @jupyterlab/* packages, webpack Module Federation), served by test/lab/main.py
 *   (Debian's jupyterlab_server.LabServerApp), loaded into the harness's jupyter_server as a server
 *   extension, so the server gets the harness's isolation and clean-up (jupyter-server.ts).
 * - The kernel and the extension: `tslaunch install --prefix <temp>` (setup.ts), then
 *   installLabExtension / uninstallLabExtension(<temp>/share/jupyter) (kernel/labextension-install.ts)
 *   for the state a test wants; the server finds extensions through TSLAUNCH_LAB_EXTENSIONS_PATH.
 * - The browser: Debian's /usr/bin/chromium through npm playwright-core (never a downloaded
 *   browser), a fresh profile each time.
 *
 * Build first: the kernel (npx tsc -p tsconfig.json), the extension (npm ci --prefix labextension &&
 * npm run build --prefix labextension) and the app (npm ci --prefix test/lab && node test/lab/build.js).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { chromium, type BrowserContext, type Locator, type Page } from 'playwright-core';
import { builtLabExtensionDir, installLabExtension, labExtensionInstallDir, uninstallLabExtension } from '../../kernel/install/labextension-install';
import { startJupyterServer, type JupyterServer } from './jupyter-server';
import { makeTempDir, removeDir } from './kernelspec-fixture';
import { sleep } from './leftovers';
import { setupKernelEnv, REPO_ROOT, type KernelEnv } from '../e2e/setup';

export const LAB_APP_DIR = path.join(REPO_ROOT, 'test', 'lab');
export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** What is missing before the lab tests can run, with the command that makes it; [] when all is there. */
export function labPrerequisites(): string[] {
  const missing: string[] = [];
  if (!fs.existsSync(CHROMIUM)) missing.push(`${CHROMIUM} (apt-get install --no-install-recommends chromium)`);
  if (!fs.existsSync('/usr/lib/python3/dist-packages/jupyterlab_server')) missing.push('jupyterlab_server (apt-get install python3-jupyterlab-server)');
  if (!fs.existsSync(path.join(LAB_APP_DIR, 'app', 'static', 'bundle.js'))) {
    missing.push(`the JupyterLab test app (npm ci --prefix test/lab && node test/lab/build.js)`);
  }
  if (!fs.existsSync(path.join(builtLabExtensionDir(), 'package.json'))) {
    missing.push('the built extension (npm ci --prefix labextension && npm run build --prefix labextension)');
  }
  return missing;
}

export interface LabOptions {
  /** Install the tslaunch extension (default true); false: the negative control, text/plain only. */
  withExtension?: boolean;
  /** Notebooks to put into the server's root dir: file name -> nbformat JSON (object) or a file to copy. */
  notebooks: Record<string, object | string>;
}

export interface Lab {
  server: JupyterServer;
  /** The kernelspec prefix, the kernels' TMPDIR, the marker its kernels and workers carry. */
  kernelEnv: KernelEnv;
  /** Where the extension was installed, or null. */
  extensionDir: string | null;
  /** Opens a notebook in a fresh Chromium and waits until its tslaunch kernel is connected and idle. */
  openNotebook(name: string): Promise<NotebookPage>;
  /** Shuts down every kernel the server runs (REST). */
  shutdownKernels(): Promise<void>;
  /** Closes the browsers, stops the server (and its kernels), kills marked strays, removes the temp dirs. Idempotent. */
  stop(): Promise<void>;
}

export interface NotebookPage {
  page: Page;
  context: BrowserContext;
  /** The n-th cell of the notebook (0-based). */
  cell(index: number): Locator;
  /** Selects cell `index` (command mode) and presses Shift+Enter, as a user would. */
  runCell(index: number): Promise<void>;
  /** Loads the page again (a fresh app: page config, extensions) and waits for the notebook's kernel, which keeps running. */
  reload(): Promise<void>;
  /** Messages of console errors and uncaught page errors, for diagnostics (never asserted on: see the recipe). */
  errors: string[];
  close(): Promise<void>;
}

/** An nbformat 4 notebook of code cells (with the tslaunch kernelspec). */
export function notebookOf(cells: string[]): object {
  return {
    nbformat: 4,
    nbformat_minor: 5,
    metadata: {
      kernelspec: { name: 'tslaunch', display_name: 'TypeScript (tslaunch)', language: 'typescript' },
      language_info: { name: 'typescript' },
    },
    cells: cells.map((source, i) => ({ cell_type: 'code', id: `cell-${i}`, metadata: {}, execution_count: null, outputs: [], source })),
  };
}

export async function startLab(opts: LabOptions): Promise<Lab> {
  const missing = labPrerequisites();
  if (missing.length > 0) throw new Error(`The JupyterLab browser tests need: ${missing.join('; ')}`);
  const kernelEnv = setupKernelEnv();
  const state = makeTempDir('tsl-lab-state-');
  const contexts = new Set<BrowserContext>();
  let server: JupyterServer | undefined;
  let extensionDir: string | null = null;
  try {
    // `tslaunch install` installs the extension too (when it is built); make the wanted state explicit.
    if (opts.withExtension === false) uninstallLabExtension(kernelEnv.spec.jupyterDir);
    else extensionDir = installLabExtension(kernelEnv.spec.jupyterDir);
    const root = path.join(state, 'root');
    fs.mkdirSync(root);
    for (const [name, nb] of Object.entries(opts.notebooks)) {
      const dest = path.join(root, name);
      if (typeof nb === 'string') fs.copyFileSync(nb, dest);
      else fs.writeFileSync(dest, JSON.stringify(nb, null, 1) + '\n');
    }
    server = await startJupyterServer({
      jupyterPath: [kernelEnv.spec.jupyterDir],
      rootDir: root,
      env: {
        ...kernelEnv.childEnv,
        PYTHONPATH: LAB_APP_DIR,
        // Where the server looks for prebuilt extensions: the prefix the extension went to (or would have).
        TSLAUNCH_LAB_EXTENSIONS_PATH: path.join(kernelEnv.spec.jupyterDir, 'labextensions'),
        TSLAUNCH_LAB_STATE_DIR: path.join(state, 'lab'),
      },
      // test/lab/main.py, loaded as a server extension: serves /lab.
      extraArgs: ['--ServerApp.jpserver_extensions=main=True'],
    });
  } catch (e) {
    await kernelEnv.stop();
    removeDir(state);
    throw e;
  }
  const srv = server;

  const shutdownKernels = async (): Promise<void> => {
    const { status, body } = await srv.api<Array<{ id: string }>>('api/kernels', { timeoutMs: 5000 }).catch(() => ({ status: 0, body: [] }));
    if (status !== 200 || !Array.isArray(body)) return;
    await Promise.all(body.map((k) => srv.api(`api/kernels/${k.id}`, { method: 'DELETE', timeoutMs: 20_000 }).catch(() => undefined)));
  };

  const openNotebook = async (name: string): Promise<NotebookPage> => {
    const profile = makeTempDir('tsl-chromium-');
    let context: BrowserContext;
    try {
      context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        args: CHROMIUM_ARGS,
        viewport: { width: 1280, height: 960 },
        deviceScaleFactor: 1,
      });
    } catch (e) {
      removeDir(profile);
      throw e;
    }
    contexts.add(context);
    const errors: string[] = [];
    const close = async (): Promise<void> => {
      contexts.delete(context);
      await context.close().catch(() => undefined);
      removeDir(profile);
    };
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
      // ?reset: a fresh workspace (no notebook of an earlier test reopened).
      await page.goto(`${srv.baseUrl}lab/tree/${encodeURIComponent(name)}?reset&token=${srv.token}`);
      await waitForKernelIdle(page, name, 60_000, errors);
      const cell = (index: number): Locator => page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell').nth(index);
      const runCell = async (index: number): Promise<void> => {
        const c = cell(index);
        const prompt = c.locator('.jp-InputPrompt').first();
        // Under load the key can reach the page before the click selected the cell (seen in CI: the
        // cell stayed unrun); press again only while the prompt still says it never ran ("[ ]:").
        for (let attempt = 0; attempt < 3; attempt++) {
          await c.scrollIntoViewIfNeeded();
          await prompt.click();
          await page.keyboard.press('Shift+Enter');
          const deadline = Date.now() + 3000;
          while (Date.now() < deadline && /^\[\s*\]:?$/.test((await prompt.innerText()).trim())) await page.waitForTimeout(50);
          if (!/^\[\s*\]:?$/.test((await prompt.innerText()).trim())) return;
        }
      };
      const reload = async (): Promise<void> => {
        await page.goto(`${srv.baseUrl}lab/tree/${encodeURIComponent(name)}?token=${srv.token}`);
        await waitForKernelIdle(page, name, 60_000, errors);
      };
      return { page, context, cell, runCell, reload, errors, close };
    } catch (e) {
      await close();
      throw e;
    }
  };

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      for (const c of [...contexts]) await c.close().catch(() => undefined);
      try {
        await srv.stop();
      } finally {
        await kernelEnv.stop();
        removeDir(state);
      }
    })();
    return stopped;
  };

  return { server: srv, kernelEnv, extensionDir, openNotebook, shutdownKernels, stop };
}

/**
 * Waits until the notebook `name` is the current widget and its kernel is connected and idle.
 * The toolbar can say idle before the session's kernel exists (then Shift+Enter sends nothing):
 * ask the app itself (window.jupyterapp, exposed by the test app's index.js).
 */
export async function waitForKernelIdle(page: Page, name: string, timeoutMs: number, errors: string[] = []): Promise<void> {
  try {
    await page.waitForFunction(
      (nb) => {
        type K = { connectionStatus: string; status: string };
        type W = { context?: { path: string }; sessionContext?: { session?: { kernel?: K | null } | null } };
        const app = (window as unknown as { jupyterapp?: { shell: { currentWidget: W | null } } }).jupyterapp;
        const w = app?.shell.currentWidget;
        const kernel = w?.sessionContext?.session?.kernel;
        return !!w && w.context?.path === nb && !!kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
      },
      name,
      { timeout: timeoutMs, polling: 100 },
    );
  } catch (e) {
    throw new Error(`${name}: the kernel did not become connected and idle within ${timeoutMs} ms (${String(e)}); page errors:\n${errors.slice(-10).join('\n')}`);
  }
  // Let the first render settle (cells, toolbar) before typing.
  await sleep(200);
}

/** Waits until the cell's execution has ended: its prompt shows an execution count (`[3]:`, not `[*]:`). */
export async function waitForCellDone(cell: Locator, timeoutMs = 30_000): Promise<void> {
  await cell.locator('.jp-InputArea-prompt').filter({ hasText: /^\s*\[\d+\]:\s*$/ }).waitFor({ timeout: timeoutMs });
}

/** The text a user sees in the cell's stream outputs (hidden lines excluded), as lines. */
export async function visibleLogLines(cell: Locator): Promise<string[]> {
  const texts = await cell
    .locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stdout"], .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    .evaluateAll((nodes) => nodes.map((n) => (n as HTMLElement).innerText));
  return texts
    .join('\n')
    .split('\n')
    .filter((l) => l.trim().length > 0);
}

export { labExtensionInstallDir };

/**
 * What happens to a running `%%launch` when the user interrupts, shuts down or restarts the
 * kernel, or when the kernel process dies: no worker may survive, no launch folder may be left.
 */
import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Kernel, KernelMessage } from '@jupyterlab/services';
import { interruptKernel, runCell, type RunCellResult } from '../helpers/jupyter-server';
import { isAlive, sleep, waitUntilGone } from '../helpers/leftovers';
import { setupE2E, useKernelsPerTest, type E2E } from './setup';

let e2e: E2E;

beforeAll(async () => {
  e2e = await setupE2E();
}, 90_000);

afterAll(async () => {
  await e2e?.stop();
}, 60_000);

const newKernel = useKernelsPerTest(() => e2e);

const SLEEPING_LAUNCH = '%%launch -n 4\nconsole.log("ready");\nawait new Promise((resolve) => setTimeout(resolve, 100_000));';

interface Running {
  /** The cell's result; rejects if the kernel went away before it ended. */
  done: Promise<RunCellResult>;
  /** The 4 worker pids, once every rank has printed "ready". */
  workers: number[];
}

/** Starts the 100 s launch and waits until all 4 ranks are running. */
async function startSleepingLaunch(kernel: Kernel.IKernelConnection, kernelPid: number): Promise<Running> {
  let text = '';
  const done = runCell(kernel, SLEEPING_LAUNCH, {
    timeoutMs: 60_000,
    onIOPub: (m) => {
      if (m.header.msg_type === 'stream') text += (m as KernelMessage.IStreamMsg).content.text;
    },
  });
  done.catch(() => undefined); // the kernel may be shut down under it
  const deadline = Date.now() + 20_000;
  while ((text.match(/\]: ready\n/g) ?? []).length < 4) {
    if (Date.now() > deadline) throw new Error(`the launch did not get going; output so far:\n${text}`);
    const finished = await Promise.race([done.then(() => true, () => true), sleep(20).then(() => false)]);
    if (finished) throw new Error(`the launch ended early:\n${JSON.stringify((await done.catch((e) => e)) as unknown).slice(0, 2000)}`);
  }
  const workers = e2e.workerPids(kernelPid);
  expect(workers).toHaveLength(4);
  return { done, workers };
}

describe('a running %%launch and the kernel lifecycle', () => {
  it('interrupt stops every worker within 2 s, the cell ends with KeyboardInterrupt, and the next launch works at once', async () => {
    const { kernel, pid } = await newKernel();
    const { done, workers } = await startSleepingLaunch(kernel, pid);
    const t0 = Date.now();
    await interruptKernel(kernel);
    const alive = await waitUntilGone(workers, 2000, 20);
    const goneMs = Date.now() - t0;
    expect(alive, `workers still alive ${goneMs} ms after the interrupt`).toEqual([]);
    const r = await done;
    const endMs = Date.now() - t0;
    console.log(`interrupt: workers gone after ${goneMs} ms, cell ended after ${endMs} ms`);
    expect(endMs).toBeLessThan(3000);
    expect(r.reply.content.status).toBe('error');
    const errors = r.outputs.filter((o) => o.output_type === 'error');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ ename: 'KeyboardInterrupt' });
    expect(isAlive(pid)).toBe(true);
    expect(e2e.launchDirs()).toEqual([]);

    const t1 = Date.now();
    const next = await runCell(kernel, '%%launch -n 2\nconsole.log("again");', { timeoutMs: 20_000 });
    const nextMs = Date.now() - t1;
    expect(next.reply.content.status).toBe('ok');
    expect(next.stdout.split('\n').filter(Boolean).sort()).toEqual(['[rank0]: again', '[rank1]: again']);
    expect(nextMs, 'the launch after the interrupt was slow').toBeLessThan(5000);
  });

  it('kernel shutdown during a launch leaves no worker and no launch folder', async () => {
    const { kernel, pid } = await newKernel();
    const { workers } = await startSleepingLaunch(kernel, pid);
    const t0 = Date.now();
    await kernel.shutdown();
    const alive = await waitUntilGone([...workers, pid], 10_000);
    console.log(`shutdown: kernel and workers gone after ${Date.now() - t0} ms`);
    expect(alive).toEqual([]);
    await e2e.expectNothingLeft({ timeoutMs: 2000, label: 'kernel shutdown' });
  });

  it('interrupt stops every launch a cell started (two notebookLauncher calls at once, workers that ignore SIGINT)', async () => {
    const { kernel, pid } = await newKernel();
    const code = [
      'import { notebookLauncher } from "tslaunch";',
      'const stubborn = () => { process.on("SIGINT", () => {}); console.log("ready " + process.pid); return new Promise(() => setInterval(() => {}, 1000)); };',
      'await Promise.all([notebookLauncher(stubborn, [], { numProcesses: 1 }), notebookLauncher(stubborn, [], { numProcesses: 1 })]);',
    ].join('\n');
    let text = '';
    const done = runCell(kernel, code, {
      timeoutMs: 60_000,
      onIOPub: (m) => {
        if (m.header.msg_type === 'stream') text += (m as KernelMessage.IStreamMsg).content.text;
      },
    });
    done.catch(() => undefined);
    const deadline = Date.now() + 30_000;
    while ((text.match(/ready \d+/g) ?? []).length < 2 && Date.now() < deadline) await sleep(50);
    const workers = [...text.matchAll(/ready (\d+)/g)].map((m) => Number(m[1]));
    expect(workers).toHaveLength(2);
    const t0 = Date.now();
    await interruptKernel(kernel);
    const r = await done;
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(await waitUntilGone(workers, 3000, 20)).toEqual([]);
    // The cell's await is interrupted by tslab's executor first: it ends as a clean KeyboardInterrupt.
    expect(r.reply.content.status).toBe('error');
    const errors = r.outputs.filter((o) => o.output_type === 'error');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ ename: 'KeyboardInterrupt', traceback: ['KeyboardInterrupt: the cell was interrupted'] });
    expect(isAlive(pid)).toBe(true);
  }, 90_000);

  it('interrupting an ordinary cell (an await, then a busy loop) ends it with KeyboardInterrupt and no internal frames; the kernel goes on', async () => {
    const { kernel, pid } = await newKernel();
    for (const code of ['await new Promise((r) => setTimeout(r, 30_000));', 'const t = Date.now(); while (Date.now() - t < 30_000) {}']) {
      const done = runCell(kernel, code, { timeoutMs: 40_000 });
      await sleep(700);
      await interruptKernel(kernel);
      const r = await done;
      const errors = r.outputs.filter((o) => o.output_type === 'error');
      expect(errors, code).toHaveLength(1);
      expect(errors[0], code).toMatchObject({ ename: 'KeyboardInterrupt', evalue: 'the cell was interrupted', traceback: ['KeyboardInterrupt: the cell was interrupted'] });
      expect(r.reply.content).toMatchObject({ status: 'error', ename: 'KeyboardInterrupt' });
    }
    const after = await runCell(kernel, '6 * 7');
    expect(after.reply.content.status).toBe('ok');
    expect(isAlive(pid)).toBe(true);
  }, 90_000);

  it('kernel restart during a launch leaves no worker, and the new kernel launches', async () => {
    const { kernel, pid } = await newKernel();
    const { workers } = await startSleepingLaunch(kernel, pid);
    const t0 = Date.now();
    await kernel.restart();
    await kernel.info;
    const alive = await waitUntilGone([...workers, pid], 10_000);
    console.log(`restart: old kernel and workers gone after ${Date.now() - t0} ms`);
    expect(alive).toEqual([]);
    const newPid = e2e.kernelPid(kernel);
    expect(newPid).not.toBe(pid);
    await e2e.expectNothingLeft({ timeoutMs: 2000, label: 'kernel restart' });

    const r = await runCell(kernel, '%%launch -n 2\nconsole.log("after restart", process.env.RANK);', { timeoutMs: 20_000 });
    expect(r.reply.content.status).toBe('ok');
    expect(r.stdout.split('\n').filter(Boolean).sort()).toEqual(['[rank0]: after restart 0', '[rank1]: after restart 1']);
  });

  it('SIGTERM to the kernel process during a launch takes every worker down with it', async () => {
    const { kernel, pid } = await newKernel();
    const { workers } = await startSleepingLaunch(kernel, pid);
    process.kill(pid, 'SIGTERM');
    const alive = await waitUntilGone([...workers, pid], 2000, 20);
    expect(alive).toEqual([]);
    await e2e.expectNothingLeft({ timeoutMs: 2000, label: 'SIGTERM of the kernel' });
    void kernel;
  });

  it('SIGKILL of the kernel process during a launch: every worker is gone within 2 s (lifeline)', async () => {
    const { kernel, pid } = await newKernel();
    const { workers } = await startSleepingLaunch(kernel, pid);
    const t0 = Date.now();
    process.kill(pid, 'SIGKILL');
    const alive = await waitUntilGone(workers, 2000, 20);
    console.log(`SIGKILL: workers gone after ${Date.now() - t0} ms`);
    expect(alive).toEqual([]);
    expect(e2e.workerPids()).toEqual([]);
    // The launch folder is the next test's subject; here only the workers count.
    await sleep(500);
    for (const d of e2e.launchDirs()) console.log(`(left for the next test to report: ${d})`);
    await e2e.cleanUp();
    void kernel;
  });

  it('SIGKILL of the kernel process during a launch leaves no launch folder behind', async () => {
    const { kernel, pid } = await newKernel();
    const { workers } = await startSleepingLaunch(kernel, pid);
    const folders = e2e.launchDirs();
    expect(folders).toHaveLength(1);
    process.kill(pid, 'SIGKILL');
    expect(await waitUntilGone(workers, 2000, 20)).toEqual([]);
    // Jupyter restarts a dead kernel on its own; give the workers and the new kernel time to tidy up.
    await sleep(3000);
    const left = e2e.launchDirs().map((d) => `${d} ${JSON.stringify(fs.readdirSync(d))}`);
    await e2e.cleanUp(); // reported once, here, not again by afterEach
    expect(left, 'the launch folder of the killed kernel is still there').toEqual([]);
    void kernel;
  });
});

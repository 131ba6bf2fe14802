/**
 * The device guard and ACCELERATE_DEBUG_MODE through a real Jupyter server, on a fake accelerator:
 * the kernels' environment (inherited from the server) tells the guard to watch device files
 * `<dir>/fake-accel*` and a package `fake-gpu-lib` (a fixture in the server's root dir, the
 * kernels' cwd). No GPU needed. After each test: no worker process and no tslaunch-* launch folder
 * is left.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Kernel } from '@jupyterlab/services';
import { runCell, type ErrorOutput, type RunCellResult } from '../helpers/jupyter-server';
import { makeTempDir, removeDir } from '../helpers/kernelspec-fixture';
import { linesByRank, sampleWorkers, setupE2E, useKernel as useSharedKernel, type E2E } from './setup';

const LAUNCH_VIEW_MIME = 'application/vnd.tslaunch.launch.v1+json';
const ISSUE = 'An issue was found when verifying a stable environment for the notebook launcher';
const PROBE_PASSED = /\[tslaunch\] ACCELERATE_DEBUG_MODE: the environment check passed in \d+ ms \((\d+) ranks? replayed the session/;

let e2e: E2E;
/** Holds the fake device files (realpath: /proc/self/fd shows resolved paths). */
let devDir: string;
/** Marker files written by launch bodies that must not run. */
let scratch: string;

beforeAll(async () => {
  devDir = fs.realpathSync(makeTempDir('tsl-e2e-fakedev-'));
  scratch = fs.realpathSync(makeTempDir('tsl-e2e-scratch-'));
  for (const n of ['fake-accel0', 'fake-accel1']) fs.writeFileSync(path.join(devDir, n), '');
  e2e = await setupE2E({
    env: {
      TSLAUNCH_GUARD_DEVICES: path.join(devDir, 'fake-accel*'),
      TSLAUNCH_GUARD_PACKAGES: 'fake-gpu-lib',
      // Whatever the runner's environment says: debug mode is off unless a cell turns it on.
      ACCELERATE_DEBUG_MODE: undefined,
    },
  });
  // A kernel started through KernelManager (no notebook path) runs in the server's cwd, which is the
  // root dir: a bare require("fake-gpu-lib") in a cell resolves from <root>/node_modules.
  const pkg = path.join(e2e.server.rootDir, 'node_modules', 'fake-gpu-lib');
  fs.mkdirSync(pkg, { recursive: true });
  fs.writeFileSync(path.join(pkg, 'package.json'), JSON.stringify({ name: 'fake-gpu-lib', version: '1.0.0', main: 'index.js' }));
  fs.writeFileSync(path.join(pkg, 'index.js'), 'exports.device = "fake:0";\n');
}, 90_000);

afterAll(async () => {
  try {
    await e2e?.stop();
  } finally {
    if (devDir) removeDir(devDir);
    if (scratch) removeDir(scratch);
  }
}, 60_000);

function errorsOf(r: RunCellResult): ErrorOutput[] {
  return r.outputs.filter((o): o is ErrorOutput => o.output_type === 'error');
}

function onlyError(r: RunCellResult): ErrorOutput {
  const errors = errorsOf(r);
  expect(errors, JSON.stringify(r.outputs, null, 1)).toHaveLength(1);
  expect(r.reply.content.status).toBe('error');
  return errors[0];
}

function expectOk(r: RunCellResult): void {
  expect(r.reply.content.status, JSON.stringify(r.outputs, null, 1).slice(0, 4000)).toBe('ok');
  expect(errorsOf(r)).toEqual([]);
}

function executionCount(r: RunCellResult): number {
  return (r.reply.content as { execution_count: number }).execution_count;
}

function launchViews(r: RunCellResult): unknown[] {
  return r.outputs.filter((o) => (o.output_type === 'display_data' || o.output_type === 'execute_result') && LAUNCH_VIEW_MIME in o.data);
}

/** Runs a cell while sampling /proc for workers below the kernel; returns the cell and every worker pid seen. */
async function runSampled(kernel: Kernel.IKernelConnection, kernelPid: number, code: string, timeoutMs = 60_000): Promise<{ r: RunCellResult; seen: number[] }> {
  const sampler = sampleWorkers(e2e, kernelPid);
  const r = await runCell(kernel, code, { timeoutMs }).finally(() => sampler.stop());
  return { r, seen: await sampler.stop() };
}

/** A kernel per describe, with the per-test leak check. */
const useKernel = () => useSharedKernel(() => e2e);

describe('the device guard: a cell that holds a (fake) device file open', () => {
  const k = useKernel();
  let touch: { count: number; firstLine: string; device: string };

  it('the cell that opens the device gets a one-time warning on stderr naming the device', async () => {
    const setup = await runCell(k.kernel(), `import * as fs from "fs";\nconst devDir = ${JSON.stringify(devDir)};`);
    expectOk(setup);
    expect(setup.stderr).toBe('');

    const device = path.join(devDir, 'fake-accel0');
    const firstLine = 'const handle = fs.openSync(devDir + "/fake-accel0", "r");';
    const r = await runCell(k.kernel(), `// take the accelerator in the kernel (what the guard exists for)\n${firstLine}\nconsole.log("opened", typeof handle);`);
    expectOk(r);
    expect(r.stdout).toBe('opened number\n');
    expect(r.stderr).toContain('tslaunch: this cell touched an accelerator in the kernel');
    expect(r.stderr).toContain(`opened ${device} (configured accelerator)`);
    expect(r.stderr).toContain('refuse to start');
    expect(r.stderr.match(/touched an accelerator/g)).toHaveLength(1);
    touch = { count: executionCount(r), firstLine, device };

    // An ordinary cell afterwards: no warning again.
    const after = await runCell(k.kernel(), 'console.log(1 + 1);');
    expectOk(after);
    expect(after.stderr).toBe('');
  });

  function expectRefusal(e: ErrorOutput): void {
    expect(e.ename).toBe('DeviceGuardError');
    expect(e.evalue).toContain(`cell [${touch.count}] (${JSON.stringify(touch.firstLine)})`);
    expect(e.evalue).toContain(`opened ${touch.device} (configured accelerator) in the kernel`);
    expect(e.evalue).toContain('nothing was started');
    expect(e.evalue).toContain('Restart the kernel');
    expect(e.traceback.join('\n')).toContain('DeviceGuardError: cell [');
  }

  it('the next %%launch -n 2 is refused with DeviceGuardError naming that cell, its first code line and the evidence; no worker starts', async () => {
    expect(touch, 'needs the previous test').toBeDefined();
    const marker = path.join(scratch, 'guard-launch-ran');
    const { r, seen } = await runSampled(k.kernel(), k.pid(), `%%launch -n 2\nrequire("fs").writeFileSync(${JSON.stringify(marker)}, "ran");`);
    expectRefusal(onlyError(r));
    expect(seen, 'worker processes seen during the refused cell').toEqual([]);
    expect(launchViews(r), 'a refused launch opens no live view').toEqual([]);
    expect(r.stdout).toBe('');
    expect(fs.existsSync(marker)).toBe(false);
  });

  it('notebookLauncher and debugLauncher are refused the same way, before any process starts', async () => {
    expectOk(await runCell(k.kernel(), 'import { notebookLauncher, debugLauncher } from "tslaunch";'));

    const nl = await runSampled(k.kernel(), k.pid(), 'await notebookLauncher((i: number) => i * 2, [], { numProcesses: 2 });');
    expectRefusal(onlyError(nl.r));
    expect(nl.seen, 'workers seen during notebookLauncher').toEqual([]);
    expect(launchViews(nl.r)).toEqual([]);

    const dl = await runSampled(k.kernel(), k.pid(), 'await debugLauncher((i: number) => i);');
    expectRefusal(onlyError(dl.r));
    expect(dl.seen, 'workers seen during debugLauncher').toEqual([]);
    expect(launchViews(dl.r)).toEqual([]);

    // Caught in the cell, the error is a DeviceGuardError with the same message.
    const caught = await runSampled(
      k.kernel(),
      k.pid(),
      'try {\n  await notebookLauncher((i: number) => i, [], { numProcesses: 2 });\n} catch (e) {\n  console.log((e as Error).name + ": " + (e as Error).message);\n}',
    );
    expectOk(caught.r);
    expect(caught.seen).toEqual([]);
    expect(caught.r.stdout).toMatch(/^DeviceGuardError: cell \[\d+\] /);
    expect(caught.r.stdout).toContain(`cell [${touch.count}] (${JSON.stringify(touch.firstLine)})`);
  });

  it('a second device-touching cell does not warn again, and the refusal still names the first cell', async () => {
    const r = await runCell(k.kernel(), 'const handle2 = fs.openSync(devDir + "/fake-accel1", "r");');
    expectOk(r);
    expect(r.stderr).toBe('');
    const { r: launch, seen } = await runSampled(k.kernel(), k.pid(), '%%launch -n 2\nconsole.log("must not run");');
    const e = onlyError(launch);
    expectRefusal(e);
    expect(e.evalue).not.toContain('fake-accel1');
    expect(seen).toEqual([]);
  });

  it('after a kernel restart the guard is clean: launches work again', async () => {
    await k.kernel().restart();
    await k.kernel().info;
    k.refreshPid();
    const r = await runCell(k.kernel(), '%%launch -n 2\nconsole.log("after restart", process.env.RANK);', { timeoutMs: 60_000 });
    expectOk(r);
    expect(r.stdout.split('\n').filter(Boolean).sort()).toEqual(['[rank0]: after restart 0', '[rank1]: after restart 1']);
    expect(r.stderr).toBe('');
  });
});

describe('the device guard: a package that takes a device when loaded', () => {
  const k = useKernel();

  it('require("fake-gpu-lib") in a fresh kernel is caught as a package; the launch is refused naming it', async () => {
    const firstLine = 'const gpu = require("fake-gpu-lib");';
    const r = await runCell(k.kernel(), `${firstLine}\nconsole.log(gpu.device);`);
    expectOk(r);
    expect(r.stdout).toBe('fake:0\n');
    expect(r.stderr).toContain('tslaunch: this cell touched an accelerator in the kernel');
    expect(r.stderr).toContain('imported fake-gpu-lib, which takes a device when loaded (configured accelerator)');
    const count = executionCount(r);

    const { r: launch, seen } = await runSampled(k.kernel(), k.pid(), '%%launch -n 2\nconsole.log("must not run");');
    const e = onlyError(launch);
    expect(e.ename).toBe('DeviceGuardError');
    expect(e.evalue).toContain(`cell [${count}] (${JSON.stringify(firstLine)})`);
    expect(e.evalue).toContain('imported fake-gpu-lib, which takes a device when loaded (configured accelerator) in the kernel');
    expect(seen).toEqual([]);
    expect(launchViews(launch)).toEqual([]);

    // With ACCELERATE_DEBUG_MODE on, the guard still refuses first: not even the probe's workers start.
    expectOk(await runCell(k.kernel(), 'process.env.ACCELERATE_DEBUG_MODE = "1";'));
    const probed = await runSampled(k.kernel(), k.pid(), '%%launch -n 2\nconsole.log("must not run");');
    expect(onlyError(probed.r).ename).toBe('DeviceGuardError');
    expect(probed.seen, 'workers seen with debug mode on').toEqual([]);
    expect(probed.r.stderr).not.toMatch(PROBE_PASSED);
  });
});

describe('ACCELERATE_DEBUG_MODE', () => {
  const k = useKernel();

  async function setMode(value: string | undefined): Promise<void> {
    const code = value === undefined ? 'delete process.env.ACCELERATE_DEBUG_MODE;' : `process.env.ACCELERATE_DEBUG_MODE = ${JSON.stringify(value)};`;
    expectOk(await runCell(k.kernel(), code));
  }

  it('set in a cell: the %%launch cell shows the probe-passed notice on stderr, then the ranks\' output', async () => {
    await setMode('1');
    const r = await runCell(k.kernel(), '%%launch -n 2\nconsole.log("rank says hi", process.env.RANK);', { timeoutMs: 90_000 });
    expectOk(r);
    const m = PROBE_PASSED.exec(r.stderr);
    expect(m, r.stderr).not.toBeNull();
    expect(m![1]).toBe('2');
    expect(r.stderr).toContain('met at a barrier, summed an all-reduce across all ranks and nodes, and each sees only its own device');
    expect(r.stderr.match(/environment check passed/g)).toHaveLength(1);
    const { byRank, unprefixed } = linesByRank(r.stdout);
    expect(unprefixed).toEqual([]);
    expect(byRank.get(0)).toEqual(['rank says hi 0']);
    expect(byRank.get(1)).toEqual(['rank says hi 1']);
    // The probe's own workers print nothing into the cell; the notice comes before any rank's line.
    const streams = r.iopub.filter((msg) => msg.header.msg_type === 'stream').map((msg) => msg.content as { name: string; text: string });
    const noticeAt = streams.findIndex((s) => s.name === 'stderr' && s.text.includes('environment check passed'));
    const firstRankAt = streams.findIndex((s) => s.name === 'stdout' && s.text.includes('[rank'));
    expect(noticeAt).toBeGreaterThanOrEqual(0);
    expect(firstRankAt).toBeGreaterThan(noticeAt);
    expect(launchViews(r)).toHaveLength(1);
  }, 120_000);

  it('1/true/yes/on/TRUE/On run the probe; 0/false/no/off/"" do not', async () => {
    const results: string[] = [];
    for (const [value, probe] of [
      ['1', true], ['true', true], ['yes', true], ['on', true], ['TRUE', true], ['On', true],
      ['0', false], ['false', false], ['no', false], ['off', false], ['', false],
    ] as const) {
      await setMode(value);
      const r = await runCell(k.kernel(), '%%launch -n 1\nconsole.log("ran");', { timeoutMs: 60_000 });
      expectOk(r);
      expect(r.stdout, `ACCELERATE_DEBUG_MODE=${JSON.stringify(value)}`).toBe('[rank0]: ran\n');
      const ran = PROBE_PASSED.test(r.stderr);
      results.push(`${JSON.stringify(value)}: ${ran ? 'probe' : 'no probe'}`);
      expect(ran, `ACCELERATE_DEBUG_MODE=${JSON.stringify(value)}; stderr: ${r.stderr}`).toBe(probe);
      if (!probe) expect(r.stderr).toBe('');
    }
    console.log(`debug mode spellings: ${results.join(', ')}`);
  }, 170_000);

  it('an invalid value ("maybe") is an error naming the accepted values, and nothing starts', async () => {
    await setMode('maybe');
    const marker = path.join(scratch, 'maybe-ran');
    const { r, seen } = await runSampled(k.kernel(), k.pid(), `%%launch -n 2\nrequire("fs").writeFileSync(${JSON.stringify(marker)}, "ran");`);
    const e = onlyError(r);
    expect(e.evalue).toContain('ACCELERATE_DEBUG_MODE');
    expect(e.evalue).toContain('"maybe"');
    for (const v of ['1', 'true', 'yes', 'on', '0', 'false', 'no', 'off']) expect(e.evalue).toMatch(new RegExp(`\\b${v}\\b`));
    expect(seen, 'workers seen').toEqual([]);
    expect(launchViews(r)).toEqual([]);
    expect(fs.existsSync(marker)).toBe(false);
  });

  it('a cell that throws only in workers makes the next launch fail in the probe, naming the rank and the replayed cell; the real launch does not start', async () => {
    await setMode('on');
    const bad = await runCell(k.kernel(), 'if (process.env.RANK !== undefined) {\n  throw new Error("only in workers");\n}\nconsole.log("fine in the kernel");');
    expectOk(bad);
    expect(bad.stdout).toBe('fine in the kernel\n');
    const badCount = executionCount(bad);

    const marker = path.join(scratch, 'probe-real-launch-ran');
    const { r, seen } = await runSampled(
      k.kernel(),
      k.pid(),
      `%%launch -n 2\nrequire("fs").writeFileSync(${JSON.stringify(marker)} + process.env.RANK, "ran");`,
      90_000,
    );
    const e = onlyError(r);
    expect(e.ename).toBe('ProbeError');
    expect(e.evalue).toMatch(new RegExp(`^${ISSUE}: rank [01]: replaying cell \\[${badCount}\\] failed in the worker: Error: only in workers`));
    expect(e.traceback.join('\n')).toContain(ISSUE);
    // The probe's workers ran (and are gone); the real launch never did.
    expect(seen.length, 'the probe starts its workers').toBeGreaterThan(0);
    expect(fs.existsSync(marker + '0')).toBe(false);
    expect(fs.existsSync(marker + '1')).toBe(false);
    expect(r.stdout).toBe('');
    expect(r.stderr).not.toMatch(PROBE_PASSED);
    expect(launchViews(r), 'no live view: the real launch did not start').toEqual([]);
  }, 120_000);
});

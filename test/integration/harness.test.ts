/**
 * Proves the end-to-end harness against Debian's ipykernel: a real jupyter_server, a real
 * @jupyterlab/services client, nbconvert, jupyter_kernel_test, and the /proc leak checks.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Kernel } from '@jupyterlab/services';
import { freePort } from '../helpers/free-port';
import {
  interruptKernel,
  makeNotebook,
  nbconvertExecute,
  normalizeOutputs,
  runCell,
  runJupyterKernelTest,
  startJupyterServer,
  startKernel,
  waitForKernelStatus,
  type JupyterServer,
} from '../helpers/jupyter-server';
import {
  ipykernelSpec,
  makeTempDir,
  prefixJupyterDir,
  randomId,
  readKernelSpec,
  removeDir,
  writeKernelSpec,
} from '../helpers/kernelspec-fixture';
import {
  LeftoversError,
  TSLAUNCH_TEMP_PREFIX,
  cmdlineOf,
  descendantsOf,
  expectNothingLeft,
  isAlive,
  killPids,
  newTempEntries,
  processesWithEnv,
  readStat,
  snapshotTempEntries,
  waitUntilGone,
} from '../helpers/leftovers';

const MARKER_NAME = 'TSLAUNCH_TEST_MARKER';

describe('leftovers (/proc) helpers', () => {
  it('finds descendants, env markers, zombies and new temp entries', async () => {
    const marker = randomId();
    // A python parent that forks: one child exits at once and stays a zombie (never waited for),
    // one child sleeps. The parent prints both pids.
    const code = [
      'import os, sys, time',
      'z = os.fork()',
      'if z == 0: os._exit(0)',
      's = os.fork()',
      'if s == 0:',
      '    time.sleep(60); os._exit(0)',
      'print(z, s, flush=True)',
      'time.sleep(60)',
    ].join('\n');
    const cp = spawn('/usr/bin/python3', ['-c', code], {
      env: { ...process.env, [MARKER_NAME]: marker },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let buf = '';
        cp.stdout!.setEncoding('utf8').on('data', (d: string) => {
          buf += d;
          if (buf.includes('\n')) resolve(buf.trim());
        });
        cp.once('exit', () => reject(new Error('python exited early')));
      });
      const [zombie, sleeper] = line.split(' ').map(Number);
      // zombie: /proc entry exists with state Z, but isAlive says no
      await expect.poll(() => readStat(zombie)?.state, { timeout: 5000 }).toBe('Z');
      expect(isAlive(zombie)).toBe(false);
      expect(isAlive(sleeper)).toBe(true);
      expect(isAlive(cp.pid!)).toBe(true);

      const desc = descendantsOf(process.pid);
      expect(desc).toContain(cp.pid);
      expect(desc).toContain(sleeper);
      expect(desc).not.toContain(zombie);
      expect(descendantsOf(cp.pid!)).toEqual([sleeper]);

      expect(processesWithEnv(MARKER_NAME, marker).sort()).toEqual([cp.pid!, sleeper].sort());
      expect(processesWithEnv(MARKER_NAME, 'no-such-value')).toEqual([]);
      expect(cmdlineOf(cp.pid!)).toMatch(/^\/usr\/bin\/python3 -c import os/);

      // temp entries: a fake tslaunch-* folder appears, is reported, then removed
      // A prefix of our own: other test files may be creating tslaunch-* folders concurrently.
      const since = snapshotTempEntries(/^tslaunch-harnesscheck-/);
      const fake = fs.mkdtempSync(path.join(os.tmpdir(), 'tslaunch-harnesscheck-'));
      expect(newTempEntries(since)).toEqual([fake]);

      const err = await expectNothingLeft({ markerEnv: { name: MARKER_NAME, value: marker }, since, timeoutMs: 300 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(LeftoversError);
      const le = err as LeftoversError;
      expect(le.processes.map((p) => p.pid).sort()).toEqual([cp.pid!, sleeper].sort());
      expect(le.paths).toEqual([fake]);
      expect(le.message).toContain(`pid ${sleeper}`);
      expect(le.message).toContain(fake);

      fs.rmdirSync(fake);
      killPids([cp.pid!, sleeper]);
      expect(await waitUntilGone([cp.pid!, sleeper], 5000)).toEqual([]);
      await expectNothingLeft({ markerEnv: { name: MARKER_NAME, value: marker }, since, timeoutMs: 2000 });
    } finally {
      cp.kill('SIGKILL');
    }
  });

  it('freePort gives a bindable port', async () => {
    const a = await freePort();
    const b = await freePort();
    expect(a).toBeGreaterThan(1024);
    expect(b).toBeGreaterThan(1024);
  });
});

describe('jupyter_server + ipykernel end to end', () => {
  const marker = { name: MARKER_NAME, value: randomId() };
  const kernelName = `tsl-test-py-${randomId(3)}`;
  const prefixKernelName = `tsl-test-prefix-${randomId(3)}`;
  let specDir: string;
  let prefixDir: string;
  /** The kernel's TMPDIR: private, so tslaunch-* folders of concurrently running test files never mix in. */
  let kernelTmp: string;
  let server: JupyterServer;

  beforeAll(async () => {
    specDir = makeTempDir('tsl-spec-');
    kernelTmp = makeTempDir('tsl-ktmp-');
    const spec = ipykernelSpec(marker);
    writeKernelSpec(specDir, kernelName, { ...spec, env: { ...spec.env, TMPDIR: kernelTmp } });
    // Same layout as `tslaunch install --prefix P`: P/share/jupyter/kernels/<name>/kernel.json
    prefixDir = makeTempDir('tsl-prefix-');
    writeKernelSpec(prefixJupyterDir(prefixDir), prefixKernelName, ipykernelSpec(marker, 'Python via prefix'));
    const t0 = Date.now();
    server = await startJupyterServer({ jupyterPath: [specDir, prefixJupyterDir(prefixDir)] });
    console.log(`jupyter_server up in ${Date.now() - t0} ms at ${server.baseUrl}`);
  }, 90_000);

  afterAll(async () => {
    await server?.stop();
    // Never leave marker processes behind, whatever a test did.
    killPids(processesWithEnv(marker.name, marker.value));
    if (specDir) removeDir(specDir);
    if (kernelTmp) removeDir(kernelTmp);
    if (prefixDir) removeDir(prefixDir);
  }, 60_000);

  it('lists kernelspecs from every JUPYTER_PATH entry, including a prefix share/jupyter', async () => {
    const { status, body } = await server.api<{ kernelspecs: Record<string, { spec: { display_name: string; env?: Record<string, string> } }> }>(
      'api/kernelspecs',
    );
    expect(status).toBe(200);
    expect(Object.keys(body.kernelspecs)).toEqual(expect.arrayContaining([kernelName, prefixKernelName]));
    expect(body.kernelspecs[prefixKernelName].spec.display_name).toBe('Python via prefix');
    expect(body.kernelspecs[kernelName].spec.env).toEqual({ [marker.name]: marker.value, TMPDIR: kernelTmp });
    expect(readKernelSpec(prefixJupyterDir(prefixDir), prefixKernelName).argv).toContain('{connection_file}');
  });

  it('runs cells: stream, execute_result, error', async () => {
    const kernel = await startKernel(server, kernelName);
    try {
      const r1 = await runCell(kernel, 'print(1)', { timeoutMs: 30_000 });
      expect(r1.reply.content.status).toBe('ok');
      expect(r1.outputs).toEqual([{ output_type: 'stream', name: 'stdout', text: '1\n' }]);
      expect(r1.stdout).toBe('1\n');
      const types = r1.iopub.map((m) => m.header.msg_type);
      expect(types).toContain('execute_input');
      expect(types[types.length - 1]).toBe('status');

      const r2 = await runCell(kernel, 'import sys\nprint("a"); print("b", file=sys.stderr); print("c")\n6*7', { timeoutMs: 30_000 });
      expect(r2.stdout).toBe('a\nc\n');
      expect(r2.stderr).toBe('b\n');
      const res = r2.outputs.find((o) => o.output_type === 'execute_result');
      expect(res && res.output_type === 'execute_result' && res.data['text/plain']).toBe('42');

      const r3 = await runCell(kernel, 'raise ValueError("boom")', { timeoutMs: 30_000 });
      expect(r3.reply.content.status).toBe('error');
      expect(r3.outputs).toEqual([expect.objectContaining({ output_type: 'error', ename: 'ValueError', evalue: 'boom' })]);

      const r4 = await runCell(
        kernel,
        'from IPython.display import display, update_display\nh = display("first", display_id=True)\nh.update("second")',
        { timeoutMs: 30_000 },
      );
      expect(r4.outputs).toEqual([
        expect.objectContaining({ output_type: 'display_data', data: { 'text/plain': "'second'" } }),
      ]);
    } finally {
      await kernel.shutdown();
    }
  }, 90_000);

  it('interrupts a running cell via REST', async () => {
    const kernel = await startKernel(server, kernelName);
    try {
      let sawStart!: () => void;
      const started = new Promise<void>((r) => (sawStart = r));
      const run = runCell(kernel, 'import time\nprint("start", flush=True)\ntime.sleep(60)\nprint("not reached")', {
        timeoutMs: 30_000,
        onIOPub: (m) => {
          if (m.header.msg_type === 'stream') sawStart();
        },
      });
      await started;
      const t0 = Date.now();
      await interruptKernel(kernel);
      const r = await run;
      expect(Date.now() - t0).toBeLessThan(10_000);
      expect(r.reply.content.status).toBe('error');
      expect(r.outputs).toEqual([
        { output_type: 'stream', name: 'stdout', text: 'start\n' },
        expect.objectContaining({ output_type: 'error', ename: 'KeyboardInterrupt' }),
      ]);
      // the kernel is still usable
      const again = await runCell(kernel, 'print("alive")', { timeoutMs: 30_000 });
      expect(again.stdout).toBe('alive\n');
    } finally {
      await kernel.shutdown();
    }
  }, 90_000);

  it('shutdown removes the kernel; leftover children are detected by expectNothingLeft', async () => {
    const since = snapshotTempEntries(TSLAUNCH_TEMP_PREFIX, kernelTmp);
    const kernel: Kernel.IKernelConnection = await startKernel(server, kernelName);
    const kernelPids = processesWithEnv(marker.name, marker.value);
    expect(kernelPids.length).toBe(1);
    const [kernelPid] = kernelPids;
    expect(descendantsOf(server.pid)).toContain(kernelPid);
    expect(cmdlineOf(kernelPid)).toContain('ipykernel_launcher');

    // One plain child, and one that escapes into its own session (never in the kernel's process group).
    const r = await runCell(
      kernel,
      [
        'import subprocess, tempfile',
        "a = subprocess.Popen(['sleep', '100'])",
        "b = subprocess.Popen(['sleep', '100'], start_new_session=True)",
        "d = tempfile.mkdtemp(prefix='tslaunch-')  # honours TMPDIR, like Node's os.tmpdir()",
        'print(a.pid, b.pid, d)',
      ].join('\n'),
      { timeoutMs: 30_000 },
    );
    const words = r.stdout.trim().split(' ');
    const sleepPids = words.slice(0, 2).map(Number);
    const leakedDir = words[2];
    expect(path.dirname(leakedDir)).toBe(kernelTmp);
    expect(newTempEntries(since)).toEqual([leakedDir]);
    expect(sleepPids).toHaveLength(2);
    expect(descendantsOf(kernelPid)).toEqual(expect.arrayContaining(sleepPids));
    expect(processesWithEnv(marker.name, marker.value).sort()).toEqual([kernelPid, ...sleepPids].sort());

    await kernel.shutdown();
    await waitForKernelStatus(kernel, 'dead', 10_000).catch(() => undefined);
    // The python kernel itself must be gone.
    expect(await waitUntilGone([kernelPid], 10_000)).toEqual([]);
    const { body: running } = await server.api<unknown[]>('api/kernels');
    expect(running).toEqual([]);

    const survivors = sleepPids.filter(isAlive);
    console.log(
      `after ipykernel shutdown: ${survivors.length}/2 sleep children survive ` +
        `(plain: ${isAlive(sleepPids[0]) ? 'alive' : 'gone'}, own session: ${isAlive(sleepPids[1]) ? 'alive' : 'gone'})`,
    );
    // The start_new_session child always survives ipykernel's shutdown: the leak check must see it.
    expect(survivors).toContain(sleepPids[1]);
    const err = await expectNothingLeft({ markerEnv: marker, since, timeoutMs: 1000, label: 'ipykernel shutdown' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(LeftoversError);
    const le = err as LeftoversError;
    expect(le.processes.map((p) => p.pid).sort()).toEqual(survivors.sort());
    expect(le.processes.every((p) => p.cmdline === 'sleep 100')).toBe(true);
    expect(le.message).toMatch(/pid \d+ \[S\] sleep 100/);
    expect(le.paths).toEqual([leakedDir]);

    killPids(survivors);
    fs.rmdirSync(leakedDir);
    await expectNothingLeft({ markerEnv: marker, since, timeoutMs: 5000, label: 'killing the sleeps' });
  }, 90_000);

  it('nbconvert --execute runs a notebook on the kernelspec', async () => {
    const work = makeTempDir('tsl-nb-');
    try {
      const nbPath = path.join(work, 'tiny.ipynb');
      fs.writeFileSync(nbPath, JSON.stringify(makeNotebook(['print("hello from nbconvert")', '2 + 3'], kernelName)));
      const r = await nbconvertExecute({ notebook: nbPath, kernelName, jupyterPath: [specDir], cwd: work, timeoutS: 60 });
      expect(r.code, r.stderr).toBe(0);
      expect(r.executed).toBeDefined();
      const cells = r.executed!.cells;
      expect(normalizeOutputs(cells[0].outputs)).toEqual([{ output_type: 'stream', name: 'stdout', text: 'hello from nbconvert\n' }]);
      expect(normalizeOutputs(cells[1].outputs)).toEqual([
        expect.objectContaining({ output_type: 'execute_result', data: { 'text/plain': '5' }, execution_count: 2 }),
      ]);
      // the input notebook is untouched; the temp output was cleaned up
      expect(fs.readdirSync(work)).toEqual(['tiny.ipynb']);

      // A failing cell: non-zero exit, no output notebook unless allowErrors
      const bad = await nbconvertExecute({
        notebook: makeNotebook(['raise RuntimeError("nbfail")'], kernelName),
        kernelName,
        jupyterPath: [specDir],
        timeoutS: 60,
      });
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toContain('nbfail');
      const tolerated = await nbconvertExecute({
        notebook: makeNotebook(['raise RuntimeError("nbfail")', 'print("after")'], kernelName),
        kernelName,
        jupyterPath: [specDir],
        timeoutS: 60,
        allowErrors: true,
      });
      expect(tolerated.code).toBe(0);
      expect(tolerated.executed!.cells[0].outputs![0]).toMatchObject({ output_type: 'error', ename: 'RuntimeError' });
      expect(normalizeOutputs(tolerated.executed!.cells[1].outputs)).toEqual([{ output_type: 'stream', name: 'stdout', text: 'after\n' }]);

      await expectNothingLeft({ markerEnv: marker, timeoutMs: 10_000, label: 'nbconvert' });
    } finally {
      removeDir(work);
    }
  }, 180_000);

  it('jupyter_kernel_test runs against the kernelspec', async () => {
    const work = makeTempDir('tsl-jkt-');
    try {
      const file = path.join(work, 'test_ipykernel_spec.py');
      fs.writeFileSync(
        file,
        [
          'import unittest',
          'import jupyter_kernel_test',
          '',
          'class IPyKernelTests(jupyter_kernel_test.KernelTests):',
          `    kernel_name = ${JSON.stringify(kernelName)}`,
          "    language_name = 'python'",
          `    code_hello_world = "print('hello, world')"`,
          '',
          "if __name__ == '__main__':",
          '    unittest.main()',
          '',
        ].join('\n'),
      );
      const r = await runJupyterKernelTest({ pythonFile: file, jupyterPath: [specDir], timeoutS: 120 });
      expect(r.code, r.output).toBe(0);
      expect(r.output).toMatch(/test_execute_stdout .*\.\.\. ok/); // uses code_hello_world
      expect(r.output).toMatch(/test_kernel_info .*\.\.\. ok/);
      expect(r.output).toMatch(/\nOK/);

      // and a failing expectation is reported as a failure
      fs.writeFileSync(
        path.join(work, 'test_wrong_lang.py'),
        fs.readFileSync(file, 'utf8').replace("language_name = 'python'", "language_name = 'typescript'").replace('IPyKernelTests', 'WrongLang'),
      );
      const bad = await runJupyterKernelTest({ pythonFile: path.join(work, 'test_wrong_lang.py'), jupyterPath: [specDir], timeoutS: 120 });
      expect(bad.code).not.toBe(0);
      expect(bad.output).toMatch(/FAILED/);
      await expectNothingLeft({ markerEnv: marker, timeoutMs: 10_000, label: 'jupyter_kernel_test' });
    } finally {
      removeDir(work);
    }
  }, 240_000);

  it('stop() shuts kernels down and leaves nothing behind', async () => {
    // a kernel that is still running when stop() is called
    await startKernel(server, kernelName);
    const kernelPids = processesWithEnv(marker.name, marker.value);
    expect(kernelPids).toHaveLength(1);
    const harnessTemp = snapshotTempEntries(/^tsl-jupyter-/);
    expect(fs.existsSync(server.tempDir)).toBe(true);

    const report = await server.stop();
    expect(report.kernelsShutDown).toHaveLength(1);
    expect(report.serverKilled).toBe(false);
    expect(report.strayPidsKilled).toEqual([]);
    expect(isAlive(server.pid)).toBe(false);
    expect(fs.existsSync(server.tempDir)).toBe(false);
    expect(harnessTemp.entries.has(path.basename(server.tempDir))).toBe(true);
    await expectNothingLeft({ markerEnv: server.markerEnv, pids: [server.pid, ...kernelPids], timeoutMs: 5000, label: 'server.stop()' });
    await expectNothingLeft({ markerEnv: marker, timeoutMs: 1000 });
    // idempotent
    expect(await server.stop()).toBe(report);
  }, 60_000);
});

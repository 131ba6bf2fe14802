/**
 * notebookLauncher / debugLauncher from a plain Node script (test/fixtures/fn-api.js, run with
 * `node`, no kernel): every worker re-runs the script and calls the launched function. The script
 * reports what its call resolved or rejected to (v8-serialized, so Maps and typed arrays survive).
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { deserialize } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { FIXTURES, REPO_ROOT, childEnv, spawnNode, withTimeout, type Exit, useLeakChecks } from '../fixtures/support';

const leak = useLeakChecks('fnapi', 'the script');

interface ScriptRun {
  exit: Exit;
  out: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  stdout: string;
  stderr: string;
}

async function runScenario(scenario: string, env: Record<string, string | undefined> = {}): Promise<ScriptRun> {
  const outFile = path.join(leak.tmp.scratch(scenario), 'out.bin');
  const child = spawnNode([path.join(FIXTURES, 'fn-api.js')], {
    env: childEnv(leak.tmp, leak.marker, { FIXTURE_SCENARIO: scenario, FIXTURE_OUT: outFile, CUDA_VISIBLE_DEVICES: '', ...env }),
  });
  let exit: Exit;
  try {
    exit = await withTimeout(child.exited, 60_000, `fn-api.js ${scenario}`);
  } finally {
    child.kill('SIGKILL');
  }
  const where = `\nstdout:\n${child.stdout()}\nstderr:\n${child.stderr()}`;
  expect(fs.existsSync(outFile), `the script wrote no result${where}`).toBe(true);
  return { exit, out: deserialize(fs.readFileSync(outFile)), stdout: child.stdout(), stderr: child.stderr() };
}

describe('notebookLauncher from a plain Node script', () => {
  it('returns fn(processIndex, ...args) of every rank, indexed by rank', async () => {
    const { exit, out } = await runScenario('values');
    expect(exit).toEqual({ code: 0, signal: null });
    expect(out.ok).toBe(true);
    expect(out.value).toHaveLength(3);
    out.value.forEach((v: { rank: number; sum: number; envRank: string; pid: number }, i: number) => {
      expect(v).toMatchObject({ rank: i, sum: 5, envRank: String(i) });
    });
    expect(new Set(out.value.map((v: { pid: number }) => v.pid)).size).toBe(3);
  });

  it('structured-clones args to the workers and return values back (Map, typed arrays, Set, Date, BigInt)', async () => {
    const { out } = await runScenario('clone');
    expect(out.ok).toBe(true);
    expect(out.value).toHaveLength(2);
    out.value.forEach((v: Record<string, unknown>, i: number) => {
      expect(v).toMatchObject({ receivedMap: true, receivedFloats: true, receivedSet: true, receivedDate: true, receivedBig: true });
      expect(v.map).toBeInstanceOf(Map);
      expect([...(v.map as Map<string, unknown>)]).toEqual([['a', 1], ['b', [2, 3]], ['rank', i]]);
      expect(v.floats).toBeInstanceOf(Float64Array);
      expect(Array.from(v.floats as Float64Array)).toEqual([1.5 * (i + 1), 2.5 * (i + 1), -0]);
      expect(v.set).toBeInstanceOf(Set);
      expect([...(v.set as Set<string>)]).toEqual(['x', 'y', `r${i}`]);
      expect(v.when).toBeInstanceOf(Date);
      expect((v.when as Date).getTime()).toBe(86_400_000 + i);
      expect(v.big).toBe(10n + BigInt(i));
      expect(v.bytes).toBeInstanceOf(Uint8Array);
      expect(Array.from(v.bytes as Uint8Array)).toEqual([1, 2, 255]);
    });
  });

  it("uses Accelerate's defaults and the default [rank<N>]: prefix on the workers' output", async () => {
    const { out, stdout } = await runScenario('defaults');
    expect(out.ok).toBe(true);
    for (const env of out.value) {
      expect(env).toMatchObject({
        MASTER_ADDR: '127.0.0.1', ACCELERATE_MIXED_PRECISION: 'no', TORCHELASTIC_MAX_RESTARTS: '0', TORCHELASTIC_RESTART_COUNT: '0',
        TORCHELASTIC_RUN_ID: 'none', GROUP_WORLD_SIZE: '1', WORLD_SIZE: '2',
      });
      // 29500 unless it was busy on this machine (then a free one replaces it).
      expect(Number(env.MASTER_PORT)).toBeGreaterThan(0);
    }
    expect(stdout).toContain('[rank0]: hello from 0\n');
    expect(stdout).toContain('[rank1]: hello from 1\n');
  });

  it('rejects with a LaunchError whose message names the failed rank; the other rank is stopped', async () => {
    const t0 = performance.now();
    const { exit, out } = await runScenario('fail');
    expect(performance.now() - t0).toBeLessThan(30_000); // not rank 0's 60 s sleep
    expect(exit.code).toBe(0); // the script caught the rejection
    expect(out.ok).toBe(false);
    expect(out.isLaunchError).toBe(true);
    expect(out.name).toBe('LaunchError');
    expect(out.message).toMatch(/rank 1 failed first \(exit code 1\): Error: rank one exploded/);
    expect(out.traceback.join('\n')).toContain('rank one exploded');
    expect(out.result.failures.map((f: { rank: number }) => f.rank)).toEqual([1]);
  });

  it('a script that launches again gets warm workers (started before the launch), and still exits when its work is done', async () => {
    const t0 = Date.now();
    const { out } = await runScenario('warm-loop');
    expect(out.ok).toBe(true);
    const { first, second } = out.value as { first: { pid: number; uptime: number }[]; second: { pid: number; uptime: number }[] };
    // Warm workers started during the 1.5 s pause; the first launch's were spawned by it.
    const oldestCold = Math.max(...first.map((r) => r.uptime));
    for (const r of second) expect(r.uptime, JSON.stringify(out.value)).toBeGreaterThan(oldestCold + 1);
    expect(second.map((r) => r.pid)).not.toEqual(expect.arrayContaining(first.map((r) => r.pid)));
    expect(Date.now() - t0).toBeLessThan(30_000);
  });

  it('a script that launches in a loop and checks every result works: in its workers, earlier calls end as they did in the script', async () => {
    const { out } = await runScenario('loop-checks');
    expect(out.ok, JSON.stringify(out)).toBe(true);
    expect(out.value).toEqual({
      results: [[1], [2, 12], [3, 13, 23]],
      caught: 'LaunchError: rank 0 failed first (exit code 1): Error: planned failure',
      last: ['last 0', 'last 1'],
    });
  });

  it('an ES module script (.mjs, and .js under "type": "module") with top-level await launches in a loop; its workers import it', async () => {
    const api = JSON.stringify(path.join(REPO_ROOT, 'dist', 'launcher', 'index.js'));
    const script = [
      `import { notebookLauncher } from ${api};`,
      'const results = [];',
      'for (const n of [1, 2]) {',
      '  const res = await notebookLauncher((i, k) => `esm ${i} ${k} ${typeof require}`, [n], { numProcesses: n });',
      '  if (res.length !== n) throw new Error("launch " + n + " returned " + JSON.stringify(res));',
      '  results.push(res);',
      '}',
      'console.log("RESULTS " + JSON.stringify(results));',
    ].join('\n');
    const dir = leak.tmp.scratch('esm');
    fs.writeFileSync(path.join(dir, 'job.mjs'), script);
    fs.mkdirSync(path.join(dir, 'pkg'));
    fs.writeFileSync(path.join(dir, 'pkg', 'package.json'), '{ "type": "module" }');
    fs.writeFileSync(path.join(dir, 'pkg', 'job.js'), script);
    for (const file of [path.join(dir, 'job.mjs'), path.join(dir, 'pkg', 'job.js')]) {
      const child = spawnNode([file], { env: childEnv(leak.tmp, leak.marker, { CUDA_VISIBLE_DEVICES: '' }), cwd: dir });
      const exit = await withTimeout(child.exited, 60_000, file);
      expect(exit.code, child.stderr()).toBe(0);
      expect(child.stdout()).toContain('RESULTS [["esm 0 1 undefined"],["esm 0 2 undefined","esm 1 2 undefined"]]');
    }
  });

  it('a TypeScript script run with `node --import tslaunch/register` (types, a local .ts module imported as ./helper.js) launches; its workers load it the same way', async () => {
    const dir = leak.tmp.scratch('mts');
    fs.writeFileSync(path.join(dir, 'helper.ts'), 'export function label(rank: number, n: number): string {\n  return `ts ${rank} of ${n}`;\n}\n');
    fs.writeFileSync(
      path.join(dir, 'job.mts'),
      [
        `import { notebookLauncher } from ${JSON.stringify(path.join(REPO_ROOT, 'dist', 'launcher', 'index.js'))};`,
        'import { label } from "./helper.js";',
        'interface Row { text: string }',
        'const rows: Row[][] = [];',
        'for (const n of [1, 2]) {',
        '  const res = await notebookLauncher((i: number, k: number): Row => ({ text: label(i, k) }), [n], { numProcesses: n });',
        '  if (res.length !== n) throw new Error("launch " + n + " returned " + JSON.stringify(res));',
        '  rows.push(res);',
        '}',
        'console.log("ROWS " + JSON.stringify(rows));',
      ].join('\n'),
    );
    const register = path.join(REPO_ROOT, 'dist', 'launcher', 'register', 'index.js');
    const child = spawnNode(['--import', register, path.join(dir, 'job.mts')], { env: childEnv(leak.tmp, leak.marker, { CUDA_VISIBLE_DEVICES: '' }), cwd: dir });
    const exit = await withTimeout(child.exited, 60_000, 'job.mts');
    expect(exit.code, child.stderr()).toBe(0);
    expect(child.stdout()).toContain('ROWS [[{"text":"ts 0 of 1"}],[{"text":"ts 0 of 2"},{"text":"ts 1 of 2"}]]');
  });

  it('rejects bad options with a clear OptionError before any process starts', async () => {
    const { out } = await runScenario('validation');
    expect(out.ok).toBe(true);
    const { outcomes, spawns } = out.value;
    expect(spawns).toBe(0);
    const expected: RegExp[] = [
      /^numProcesses must be a positive integer, got "two"\. Example: notebookLauncher\(fn, args, \{ numProcesses: 4 \}\)$/,
      /^mixedPrecision must be one of no, fp16, bf16, fp8, got "fp64"/,
      /^nodeRank must be less than numNodes .*node_rank 2 with num_nodes 2/,
      /^usePort must be a port number from 1 to 65535, got "abc"/,
      /^monitorInterval must be a number of seconds greater than 0, got 0/,
      /^maxRestarts must be a non-negative integer, got -1/,
      /^rdzvConf must be key=value pairs separated by commas/,
      /^rdzvBackend must be one of static, c10d, etcd, etcd-v2, got "zookeeper"/,
      /unknown option "bogusOption"\. Accepted: numProcesses, mixedPrecision/,
    ];
    expect(outcomes).toHaveLength(expected.length);
    outcomes.forEach((o: { options: unknown; ok: boolean; threwSynchronously: boolean; name: string; message: string; isOptionError: boolean }, i: number) => {
      const what = JSON.stringify(o.options);
      expect(o.ok, what).toBe(false);
      expect(o.threwSynchronously, `${what} should reject, not throw`).toBe(false);
      expect(o.isOptionError, what).toBe(true);
      expect(o.name, what).toBe('OptionError');
      expect(o.message, what).toMatch(expected[i]);
    });
    expect(leak.tmp.launchDirs()).toEqual([]);
  });

  it('without numProcesses and with no accelerator visible, says to pass numProcesses (and starts nothing)', async () => {
    const { out } = await runScenario('no-accelerator', { CUDA_VISIBLE_DEVICES: '' });
    expect(out.ok).toBe(false);
    expect(out.isOptionError).toBe(true);
    expect(out.message).toMatch(/num_processes was not given and no accelerator is visible/);
    expect(out.message).toContain('notebookLauncher(fn, args, { numProcesses: 4 })');
    expect(out.spawns).toBe(0);
  });

  it('without numProcesses, starts one process per visible accelerator (CUDA_VISIBLE_DEVICES=0,1 -> 2), each given its own', async () => {
    const { out } = await runScenario('accelerators', { CUDA_VISIBLE_DEVICES: '0,1' });
    expect(out.ok).toBe(true);
    expect(out.value.map((s: { processIndex: number }) => s.processIndex)).toEqual([0, 1]);
    expect(out.value.map((s: { numProcesses: number }) => s.numProcesses)).toEqual([2, 2]);
    // "cuda:<id> for the accelerator this rank was given" (worker-api's DistributedState.device).
    expect(out.value.map((s: { device: string }) => s.device)).toEqual(['cuda:0', 'cuda:1']);
    expect(out.value.map((s: { CUDA_VISIBLE_DEVICES: string }) => s.CUDA_VISIBLE_DEVICES)).toEqual(['0', '1']);
  });

  it('gives every rank its state: processIndex, localProcessIndex, numProcesses, isMainProcess, mixedPrecision, restartCount', async () => {
    const { out } = await runScenario('state');
    expect(out.ok).toBe(true);
    expect(out.value).toEqual([0, 1, 2].map((i) => ({
      processIndex: i, localProcessIndex: i, numProcesses: 3, numNodes: 1, nodeRank: 0, isMainProcess: i === 0,
      isLocalMainProcess: i === 0, mixedPrecision: 'fp16', device: 'cpu', restartCount: 0,
    })));
  });

  it('waitForEveryone is a real barrier: no rank leaves before the slowest arrives (twice)', async () => {
    const { out } = await runScenario('barrier');
    expect(out.ok).toBe(true);
    const t = out.value as { arrive: number; leave: number; arrive2: number; leave2: number }[];
    expect(t).toHaveLength(3);
    const lastArrival = Math.max(...t.map((x) => x.arrive));
    // Rank 2 slept 800 ms longer than rank 0: without a barrier rank 0 would leave ~800 ms early.
    expect(lastArrival - t[0].arrive).toBeGreaterThanOrEqual(500);
    for (const x of t) expect(x.leave).toBeGreaterThanOrEqual(lastArrival);
    const lastArrival2 = Math.max(...t.map((x) => x.arrive2));
    for (const x of t) expect(x.leave2).toBeGreaterThanOrEqual(lastArrival2);
  });

  it('tells the script user (on stderr) when a busy use_port was replaced, as tslaunch run does', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const busy = (blocker.address() as net.AddressInfo).port;
    try {
      const { out, stderr } = await runScenario('busy-port', { FIXTURE_PORT: String(busy) });
      expect(out.ok).toBe(true);
      const [p0, p1] = out.value as string[];
      expect(p0).toBe(p1);
      expect(Number(p0)).not.toBe(busy);
      // The Launch emits a notice naming both ports; the CLI prints it, the script host must too.
      expect(stderr).toContain(`use_port ${busy} is busy on 127.0.0.1; the workers get MASTER_PORT=${p0} instead.`);
    } finally {
      blocker.close();
    }
  });

  it('runs two launches from one script, each with its own function and args', async () => {
    const { out } = await runScenario('two-launches');
    expect(out.ok).toBe(true);
    expect(out.value).toEqual({ first: ['first 0', 'first 1'], second: ['second 0 x', 'second 1 x'] });
  });

  it('after a call rejected by option validation, the next launch runs its own function (not the rejected one)', async () => {
    const { out } = await runScenario('after-validation-error');
    expect(out.ok).toBe(true);
    expect(out.value.rejected).toBe('OptionError');
    expect(out.value.second, "the workers ran another call's function").toEqual(['second 0', 'second 1']);
  });

  it('rejects args that cannot be structured-cloned before any process starts', async () => {
    const { out } = await runScenario('uncloneable');
    expect(out.ok).toBe(false);
    expect(out.isOptionError).toBe(true);
    expect(out.message).toMatch(/args must be structured-cloneable/);
    expect(out.spawns).toBe(0);
  });

  it("fails the rank whose return value cannot be sent back, saying so", async () => {
    const { out } = await runScenario('bad-return');
    expect(out.ok).toBe(false);
    expect(out.isLaunchError).toBe(true);
    expect(out.message).toMatch(/^rank 1 failed first \(exit code 1\): TypeError: rank 1's return value cannot be sent back \(it must be structured-cloneable\)/);
  });

  it('print() prints once (on the main process); console.log prints on every rank', async () => {
    const { out, stdout } = await runScenario('print');
    expect(out.value).toEqual([0, 1, 2]);
    const lines = stdout.split('\n');
    expect(lines.filter((l) => l.includes('printed once'))).toEqual(['[rank0]: printed once by 0']);
    expect(lines.filter((l) => l.includes('every rank')).sort()).toEqual(['[rank0]: every rank 0', '[rank1]: every rank 1', '[rank2]: every rank 2']);
  });
});

describe('debugLauncher from a plain Node script', () => {
  it('runs 2 CPU-only processes: ACCELERATE_USE_CPU=yes, no mixed precision, no visible accelerator, device cpu', async () => {
    // The parent shows accelerators and asks for bf16: the debug launcher overrides both.
    const { out } = await runScenario('debug', { CUDA_VISIBLE_DEVICES: '0,1', ACCELERATE_MIXED_PRECISION: 'bf16' });
    expect(out.ok).toBe(true);
    expect(out.value).toHaveLength(2);
    out.value.forEach((s: Record<string, unknown>, i: number) => {
      expect(s).toMatchObject({
        processIndex: i, numProcesses: 2, device: 'cpu', mixedPrecision: 'no', ACCELERATE_USE_CPU: 'yes',
        ACCELERATE_MIXED_PRECISION: 'no', CUDA_VISIBLE_DEVICES: '',
      });
    });
  });
});

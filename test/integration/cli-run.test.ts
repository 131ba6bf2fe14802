/**
 * `tslaunch run` (dist/bin/tslaunch.js) as a user runs it from a terminal: a TypeScript script that
 * imports a local .ts module and tslaunch's worker API (test/fixtures/cli-script/main.ts), prefixed
 * output, the job's exit code, the error report on stderr, flag errors, --help. Each run gets the
 * suite's private TMPDIR; no worker and no tslaunch-* folder may be left.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port';
import {
  CLI,
  FIXTURES,
  childEnv,
  spawnNode,
  withTimeout,
  workerPidsUnder,
  type Child,
  type Exit,
  useLeakChecks,
} from '../fixtures/support';

const leak = useLeakChecks('clirun', 'tslaunch run');

const SCRIPT = path.join(FIXTURES, 'cli-script', 'main.ts');
const SCRIPT_REL = path.relative(path.resolve(FIXTURES, '..', '..'), SCRIPT); // test/fixtures/cli-script/main.ts

function tslaunch(args: string[], env: Record<string, string> = {}): Child {
  return spawnNode([CLI, ...args], { env: childEnv(leak.tmp, leak.marker, { CUDA_VISIBLE_DEVICES: '', ...env }) });
}

async function runToEnd(args: string[], env: Record<string, string> = {}): Promise<{ exit: Exit; stdout: string; stderr: string }> {
  const child = tslaunch(args, env);
  try {
    const exit = await withTimeout(child.exited, 60_000, `tslaunch ${args.join(' ')}`);
    return { exit, stdout: child.stdout(), stderr: child.stderr() };
  } finally {
    child.kill('SIGKILL');
  }
}

describe('tslaunch run', () => {
  it('runs a TypeScript script (importing a local .ts module) in 3 ranks: prefixed output, args passed, exit code 0', async () => {
    const { exit, stdout, stderr } = await runToEnd(['run', '-n', '3', SCRIPT_REL, 'a', 'b']);
    expect(exit, stderr).toEqual({ code: 0, signal: null });
    const lines = stdout.split('\n').filter(Boolean).sort();
    expect(lines).toEqual([0, 1, 2].map((r) => `[rank${r}]: hello from rank ${r} of 3 args=["a","b"] sum=6 script=main.ts`));
    for (const r of [0, 1, 2]) expect(stderr).toContain(`[rank${r}]: stderr line from ${r}\n`);
    expect(stderr).not.toMatch(/LaunchError|tslaunch:/);
    expect(leak.tmp.launchDirs()).toEqual([]);
  });

  it('a script uses the collectives: allReduce, allGather and broadcastObject across 3 ranks', async () => {
    const script = path.relative(path.resolve(FIXTURES, '..', '..'), path.join(FIXTURES, 'cli-collectives', 'train.ts'));
    const { exit, stdout, stderr } = await runToEnd(['run', '-n', '3', script]);
    expect(exit, stderr).toEqual({ code: 0, signal: null });
    expect(stdout.split('\n').filter(Boolean).sort()).toEqual(
      [0, 1, 2].map((r) => `[rank${r}]: rank ${r}: mean 2 2 gathered 0,10,20 config {"lr":0.1,"from":0}`),
    );
  });

  it("passes everything after the script to the script, flag-like arguments included; flags before it are tslaunch's", async () => {
    const { exit, stdout } = await runToEnd(['run', '--num_processes=2', '--mixed_precision', 'bf16', SCRIPT_REL, '--lr', '0.1', '-n', '7']);
    expect(exit.code).toBe(0);
    const lines = stdout.split('\n').filter(Boolean).sort();
    expect(lines).toEqual([0, 1].map((r) => `[rank${r}]: hello from rank ${r} of 2 args=["--lr","0.1","-n","7"] sum=6 script=main.ts`));
  });

  it('exits with the code of a rank that exits with 7 and prints the report on stderr; the other ranks are stopped', async () => {
    const child = tslaunch(['run', '-n', '3', SCRIPT_REL], { FIXTURE_EXIT_RANK: '1', FIXTURE_EXIT_CODE: '7', FIXTURE_SLEEP_MS: '60000' });
    let exit: Exit;
    try {
      exit = await withTimeout(child.exited, 60_000, 'tslaunch run (rank 1 exits 7)');
    } finally {
      child.kill('SIGKILL');
    }
    const stderr = child.stderr();
    expect(exit, stderr).toEqual({ code: 7, signal: null });
    expect(stderr).toContain('LaunchError: rank 1 failed first (exit code 7): it reported no error before exiting');
    expect(stderr).toContain('No other rank failed. Ranks 0, 2 were stopped by tslaunch.');
    // The report comes once, after the logs.
    expect(stderr.match(/LaunchError/g)).toHaveLength(1);
    expect(stderr.trimEnd().split('\n').at(-1)).toBe('No other rank failed. Ranks 0, 2 were stopped by tslaunch.');
  });

  it('stops every rank on SIGINT and exits 130 with a KeyboardInterrupt report', async () => {
    const child = tslaunch(['run', '-n', '2', SCRIPT_REL], { FIXTURE_SLEEP_MS: '60000' });
    try {
      await child.waitFor(/\[rank0\]: sleeping[\s\S]*\[rank1\]: sleeping|\[rank1\]: sleeping[\s\S]*\[rank0\]: sleeping/, 'stdout', 30_000);
      const workers = workerPidsUnder(child.pid);
      expect(workers).toHaveLength(2);
      child.kill('SIGINT');
      const exit = await withTimeout(child.exited, 15_000, 'the interrupted tslaunch run');
      expect(exit).toEqual({ code: 130, signal: null });
      expect(child.stderr()).toContain('KeyboardInterrupt: the launch was interrupted; every worker was stopped.');
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('exits 130 (interrupted, not a usage error) on SIGINT while waiting for the other nodes to join', async () => {
    const port = await freePort();
    const child = tslaunch(['run', '--num_nodes', '2', '--use_port', String(port), '-n', '1', SCRIPT_REL], { TSLAUNCH_SECRET: 'secret' });
    try {
      await child.waitFor(/waiting for 1 more node\(s\) to join/, 'stderr', 30_000);
      child.kill('SIGINT');
      const exit = await withTimeout(child.exited, 15_000, 'the interrupted tslaunch run');
      expect(exit, child.stderr()).toEqual({ code: 130, signal: null });
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('rejects a bad flag with exit code 2 and a clear message, starting nothing', async () => {
    const cases: [string[], RegExp][] = [
      [['run', '--bogus', '3', SCRIPT_REL], /^tslaunch: unknown flag --bogus in "tslaunch run --bogus 3"\. Accepted flags: --num_processes \(-n\), --mixed_precision/],
      [['run', '-n', 'two', SCRIPT_REL], /^tslaunch: --num_processes must be a positive integer, got "two"/],
      [['run', '-n', '2', '--mixed_precision', 'fp64', SCRIPT_REL], /^tslaunch: --mixed_precision must be one of no, fp16, bf16, fp8, got "fp64"/],
      [['run', SCRIPT_REL], /^tslaunch: num_processes was not given and no accelerator is visible to default to\. Pass the number of worker processes, e\.g\. tslaunch run --num_processes 4 script\.ts/],
      [['run', '-n', '2', 'test/fixtures/cli-script/no-such-script.ts'], /^tslaunch: no such script: .*no-such-script\.ts/],
      [['run', '-n', '2', '--num_nodes', '2', SCRIPT_REL], /^tslaunch: a launch across nodes needs a shared secret .*TSLAUNCH_SECRET/],
    ];
    for (const [args, message] of cases) {
      const { exit, stdout, stderr } = await runToEnd(args);
      expect(exit.code, `${args.join(' ')}\n${stderr}`).toBe(2);
      expect(stderr, args.join(' ')).toMatch(message);
      expect(stdout, args.join(' ')).toBe('');
    }
    expect(leak.tmp.launchDirs()).toEqual([]);
  });

  it('--help prints the usage with every flag and exits 0; no script prints it and exits 2', async () => {
    const help = await runToEnd(['run', '--help']);
    expect(help.exit.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: tslaunch run \[flags\] script\.ts \[args\.\.\.\]\n/);
    for (const flag of ['-n, --num_processes N', '--mixed_precision', '--use_port PORT', '--num_nodes', '--rdzv_backend', '--max_restarts', '--monitor_interval', '--log_line_prefix_template', '-h, --help']) {
      expect(help.stdout).toContain(flag);
    }
    expect(help.stdout).not.toContain('%%launch');
    expect(help.stdout).toContain('Example: tslaunch run --num_processes 4 --mixed_precision bf16');

    const bare = await runToEnd(['run']);
    expect(bare.exit.code).toBe(2);
    expect(bare.stdout).toBe(help.stdout);
  });
});

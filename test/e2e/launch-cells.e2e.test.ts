/**
 * `%%launch` cells through a real Jupyter server: what every rank's output looks like in the cell,
 * what workers see, and how failures are reported. After each test: no worker process and no
 * tslaunch-* launch folder is left.
 */
import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCell, type ErrorOutput, type RunCellResult } from '../helpers/jupyter-server';
import { linesByRank, linesOf, sampleWorkers, setupE2E, useKernel as useSharedKernel, type E2E } from './setup';

let e2e: E2E;

beforeAll(async () => {
  // 4 x 50 000 lines is ~1.5 MB within a second: above jupyter_server's default iopub rate limit.
  // Default server limits on purpose: the kernel paces its output under iopub_data_rate_limit, so nothing is dropped.
  e2e = await setupE2E();
}, 90_000);

afterAll(async () => {
  await e2e?.stop();
}, 60_000);

function errorsOf(r: RunCellResult): ErrorOutput[] {
  return r.outputs.filter((o): o is ErrorOutput => o.output_type === 'error');
}

function onlyError(r: RunCellResult): ErrorOutput {
  const errors = errorsOf(r);
  expect(errors, JSON.stringify(r.outputs, null, 1)).toHaveLength(1);
  return errors[0];
}

function expectOk(r: RunCellResult): void {
  expect(r.reply.content.status, JSON.stringify(r.outputs, null, 1).slice(0, 4000)).toBe('ok');
  expect(errorsOf(r)).toEqual([]);
}

/** Every stdout line is `[rank<r>]: ...`; returns each rank's lines (prefix removed). */
function stdoutByRank(r: RunCellResult): Map<number, string[]> {
  const { byRank, unprefixed } = linesByRank(r.stdout);
  expect(unprefixed, 'lines without a rank prefix').toEqual([]);
  return byRank;
}

/** A kernel per describe, with the per-test leak check. */
const useKernel = () => useSharedKernel(() => e2e);

describe('%%launch output and environment', () => {
  const k = useKernel();

  it('prints every rank\'s lines with the default [rank<r>]: prefix, each rank\'s lines in order', async () => {
    const r = await runCell(k.kernel(), '%%launch -n 4\nfor (let i = 0; i < 20; i++) console.log(`line ${i} of rank ${process.env.RANK}`);');
    expectOk(r);
    const byRank = stdoutByRank(r);
    expect([...byRank.keys()].sort()).toEqual([0, 1, 2, 3]);
    for (const [rank, lines] of byRank) {
      expect(lines).toEqual(Array.from({ length: 20 }, (_, i) => `line ${i} of rank ${rank}`));
    }
    expect(r.stderr).toBe('');
  });

  it('a helper function and constant from an earlier cell are usable in the body (replay)', async () => {
    const def = await runCell(k.kernel(), 'function shardName(rank: number): string {\n  return `shard-${rank}`;\n}\nconst base = 100;');
    expectOk(def);
    const r = await runCell(k.kernel(), '%%launch -n 2\nconst rank = Number(process.env.RANK);\nconsole.log(shardName(rank), base + rank);');
    expectOk(r);
    const byRank = stdoutByRank(r);
    expect(byRank.get(0)).toEqual(['shard-0 100']);
    expect(byRank.get(1)).toEqual(['shard-1 101']);
  });

  it('workers see the torchrun/Accelerate environment; RANK is exactly 0..3 for -n 4', async () => {
    const names = [
      'RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'LOCAL_WORLD_SIZE', 'GROUP_RANK', 'ROLE_NAME', 'MASTER_ADDR', 'MASTER_PORT',
      'TORCHELASTIC_RESTART_COUNT', 'TORCHELASTIC_MAX_RESTARTS', 'TORCHELASTIC_RUN_ID', 'ACCELERATE_MIXED_PRECISION',
    ];
    const body = `const names = ${JSON.stringify(names)};\nconsole.log(JSON.stringify(Object.fromEntries(names.map((n) => [n, process.env[n] ?? null]))));`;
    const r = await runCell(k.kernel(), `%%launch -n 4\n${body}`);
    expectOk(r);
    const byRank = stdoutByRank(r);
    expect([...byRank.keys()].sort()).toEqual([0, 1, 2, 3]);
    for (const [rank, lines] of byRank) {
      expect(lines).toHaveLength(1);
      expect(JSON.parse(lines[0])).toEqual({
        RANK: String(rank),
        LOCAL_RANK: String(rank),
        WORLD_SIZE: '4',
        LOCAL_WORLD_SIZE: '4',
        GROUP_RANK: '0',
        ROLE_NAME: 'default',
        MASTER_ADDR: '127.0.0.1',
        MASTER_PORT: '29500',
        TORCHELASTIC_RESTART_COUNT: '0',
        TORCHELASTIC_MAX_RESTARTS: '0',
        TORCHELASTIC_RUN_ID: 'none',
        ACCELERATE_MIXED_PRECISION: 'no',
      });
    }

    // flags reach the environment
    const r2 = await runCell(
      k.kernel(),
      `%%launch --num_processes 2 --mixed_precision bf16 --use_port 29612 --master_addr localhost --max_restarts 2 --rdzv_id job7\n${body}`,
    );
    expectOk(r2);
    const byRank2 = stdoutByRank(r2);
    expect([...byRank2.keys()].sort()).toEqual([0, 1]);
    for (const [rank, lines] of byRank2) {
      expect(JSON.parse(lines[0])).toMatchObject({
        RANK: String(rank),
        WORLD_SIZE: '2',
        MASTER_ADDR: 'localhost',
        MASTER_PORT: '29612',
        TORCHELASTIC_MAX_RESTARTS: '2',
        TORCHELASTIC_RUN_ID: 'job7',
        ACCELERATE_MIXED_PRECISION: 'bf16',
      });
    }
  });

  it('a custom --log_line_prefix_template fills the placeholders and keeps an unknown ${foo} as written', async () => {
    const r = await runCell(
      k.kernel(),
      '%%launch -n 2 --log_line_prefix_template "<${role_name}|${rank}|${local_rank}|${node_rank}|${foo}> "\nconsole.log("hi");\nconsole.log("there");',
    );
    expectOk(r);
    const { byRank, unprefixed } = linesByRank(r.stdout, /^<default\|(\d+)\|\d+\|0\|\$\{foo\}> (.*)$/);
    expect(unprefixed).toEqual([]);
    expect(byRank.get(0)).toEqual(['hi', 'there']);
    expect(byRank.get(1)).toEqual(['hi', 'there']);
    expect(r.stdout).toContain('<default|1|1|0|${foo}> hi\n');
  });

  it('a partial line (stdout.write without newline) is never glued to another rank\'s line', async () => {
    const body = [
      'const rank = Number(process.env.RANK);',
      'process.stdout.write(`start-${rank}`);',
      'await new Promise((resolve) => setTimeout(resolve, 300 + 50 * rank));',
      'console.log(` middle-${rank}`);',
      'console.log(`full-${rank}`);',
      'process.stdout.write(`tail-${rank}`);',
    ].join('\n');
    const r = await runCell(k.kernel(), `%%launch -n 4\n${body}`);
    expectOk(r);
    const byRank = stdoutByRank(r);
    expect([...byRank.keys()].sort()).toEqual([0, 1, 2, 3]);
    for (const [rank, lines] of byRank) {
      expect(lines).toEqual([`start-${rank} middle-${rank}`, `full-${rank}`, `tail-${rank}`]);
    }
  });

  it('4 ranks x 50 000 lines all arrive in order, batched into far fewer stream messages', async () => {
    const t0 = Date.now();
    const r = await runCell(k.kernel(), '%%launch -n 4\nfor (let i = 0; i < 50000; i++) console.log(i);', { timeoutMs: 90_000 });
    const ms = Date.now() - t0;
    expectOk(r);
    const byRank = stdoutByRank(r);
    expect([...byRank.keys()].sort()).toEqual([0, 1, 2, 3]);
    for (const [rank, lines] of byRank) {
      expect(lines.length, `rank ${rank}`).toBe(50_000);
      const firstWrong = lines.findIndex((l, i) => l !== String(i));
      expect(firstWrong, `rank ${rank}: first line out of order`).toBe(-1);
    }
    const streams = r.iopub.filter((m) => m.header.msg_type === 'stream').length;
    console.log(`4 x 50 000 lines: ${ms} ms, ${streams} stream messages`);
    expect(streams).toBeLessThan(2000);
  }, 120_000);

  it('tslab.display.html in a worker reaches the cell as display_data tagged with the rank', async () => {
    const r = await runCell(k.kernel(), '%%launch -n 2\nimport * as tslab from "tslab";\ntslab.display.html(`<b>rank ${process.env.RANK}</b>`);');
    expectOk(r);
    // (the launch's own live view is a display too, with its own MIME type: not counted here)
    const displays = r.outputs.filter(
      (o): o is Extract<typeof o, { output_type: 'display_data' }> => o.output_type === 'display_data' && !Object.keys(o.data).some((m) => m.startsWith('application/vnd.tslaunch')),
    );
    expect(displays).toHaveLength(2);
    const byRank = new Map(displays.map((d) => [(d.metadata as { tslaunch?: { rank?: number } }).tslaunch?.rank, d]));
    expect([...byRank.keys()].sort()).toEqual([0, 1]);
    for (const [rank, d] of byRank) {
      expect(d.output_type === 'display_data' && d.data['text/html']).toBe(`<b>rank ${rank}</b>`);
    }
  });

  it('under jupyter_server\'s default iopub limits, 4 ranks x 1 500 displays all arrive, in order per rank (message pacing)', async () => {
    const r = await runCell(
      k.kernel(),
      '%%launch -n 4\nimport * as tslab from "tslab";\nfor (let i = 0; i < 1500; i++) tslab.display.text(`d ${process.env.RANK} ${i}`);',
      { timeoutMs: 60_000 },
    );
    expectOk(r);
    const texts = r.outputs
      .filter((o): o is Extract<typeof o, { output_type: 'display_data' }> => o.output_type === 'display_data' && !Object.keys(o.data).some((m) => m.startsWith('application/vnd.tslaunch')))
      .map((o) => String(o.data['text/plain']));
    expect(texts).toHaveLength(6000);
    for (const rank of [0, 1, 2, 3]) {
      expect(texts.filter((t) => t.startsWith(`d ${rank} `))).toEqual(Array.from({ length: 1500 }, (_, i) => `d ${rank} ${i}`));
    }
  }, 90_000);

  it('under jupyter_server\'s default iopub limits, a single 3 MB line arrives whole, with its prefix (split across messages)', async () => {
    const r = await runCell(k.kernel(), '%%launch -n 1\nconsole.log("y".repeat(3_000_000) + " end");', { timeoutMs: 60_000 });
    expectOk(r);
    expect(r.stdout.length).toBe('[rank0]: '.length + 3_000_000 + ' end\n'.length);
    expect(r.stdout).toBe(`[rank0]: ${'y'.repeat(3_000_000)} end\n`);
  }, 90_000);

  it('native output of a worker\'s child process (fd 1 and 2) reaches the cell prefixed', async () => {
    const r = await runCell(
      k.kernel(),
      '%%launch -n 2\nrequire("child_process").execSync("echo native-out; echo native-err 1>&2", { stdio: "inherit" });',
    );
    expectOk(r);
    const byRank = stdoutByRank(r);
    expect(byRank.get(0)).toEqual(['native-out']);
    expect(byRank.get(1)).toEqual(['native-out']);
    const err = linesByRank(r.stderr);
    expect(err.unprefixed).toEqual([]);
    expect(err.byRank.get(0)).toEqual(['native-err']);
    expect(err.byRank.get(1)).toEqual(['native-err']);
  });

  it('a rank\'s own lines and its child processes\' native output keep the order they were written in (A1, child B2, C3; 20 rounds)', async () => {
    const body = [
      'const { execSync, spawn } = require("child_process");',
      'const { promisify } = require("util");',
      'for (let i = 0; i < 20; i++) {',
      '  console.log(`A${i}`);',
      '  execSync(`echo B${i}`, { stdio: "inherit" });',
      '  console.log(`C${i}`);',
      '}',
      'process.stdout.write("D-");',
      'await new Promise((resolve) => spawn("echo", ["E"], { stdio: "inherit" }).on("close", resolve));',
      '// util.promisify(exec) still resolves to { stdout, stderr } (the wrapper keeps exec\'s properties)',
      'const { stdout } = await promisify(require("child_process").exec)("echo F");',
      'console.log("F=" + stdout.trim());',
    ].join('\n');
    const r = await runCell(k.kernel(), `%%launch -n 2\n${body}`);
    expectOk(r);
    const expected = [...Array.from({ length: 20 }, (_, i) => [`A${i}`, `B${i}`, `C${i}`]).flat(), 'D-E', 'F=F'];
    for (const rank of [0, 1]) expect(stdoutByRank(r).get(rank)).toEqual(expected);
  });

  it('process.stderr.write and console.error appear as a prefixed stderr stream, not stdout', async () => {
    const r = await runCell(k.kernel(), '%%launch -n 2\nprocess.stderr.write("written to stderr\\n");\nconsole.error("console error");\nconsole.log("to stdout");');
    expectOk(r);
    const err = linesByRank(r.stderr);
    expect(err.unprefixed).toEqual([]);
    for (const rank of [0, 1]) {
      expect(err.byRank.get(rank)).toEqual(['written to stderr', 'console error']);
    }
    expect(stdoutByRank(r).get(0)).toEqual(['to stdout']);
    expect(r.stdout).not.toContain('stderr');
    expect(r.outputs.some((o) => o.output_type === 'stream' && o.name === 'stderr')).toBe(true);
  });

  it('a character written as bytes across two writes arrives whole (UTF-8 decoded per stream), in a rank and in the kernel', async () => {
    const split = 'const b = Buffer.from("price: \u20ac 5\\n");\nprocess.stdout.write(b.subarray(0, 8));\nprocess.stdout.write(b.subarray(8));';
    const r = await runCell(k.kernel(), `%%launch -n 2\n${split}`);
    expectOk(r);
    for (const rank of [0, 1]) expect(stdoutByRank(r).get(rank)).toEqual(['price: \u20ac 5']);
    expect(r.stdout).not.toContain('\ufffd');
    const kernelSide = await runCell(k.kernel(), split);
    expect(kernelSide.stdout).toBe('price: \u20ac 5\n');
  });

  it('a background process that inherited a rank\'s stdout does not hold the cell once the rank ended', async () => {
    const pidFile = `/tmp/tslaunch-e2e-bg-${process.pid}-${Date.now()}`;
    const t0 = Date.now();
    const r = await runCell(k.kernel(), `%%launch -n 1\nrequire("child_process").execSync("sleep 30 & echo $! > ${pidFile}", { stdio: "inherit", shell: "/bin/sh" });\nconsole.log("rank done");`, { timeoutMs: 20_000 });
    try {
      expectOk(r);
      expect(Date.now() - t0).toBeLessThan(8000);
      expect(stdoutByRank(r).get(0)).toEqual(['rank done']);
      // ... and it ended with the launch (issue 11, item 7).
      const pid = Number(fs.readFileSync(pidFile, 'utf8'));
      expect(pid).toBeGreaterThan(0);
      expect(fs.existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8')), 'the background sleep outlived the launch').toBe(false);
    } finally {
      try {
        process.kill(Number(fs.readFileSync(pidFile, 'utf8')), 'SIGKILL');
      } catch {
        // already gone
      }
      fs.rmSync(pidFile, { force: true });
    }
  });

  it('carriage-return progress output is forwarded per rank as it comes, each redraw with its prefix', async () => {
    const body = 'for (const p of [10, 20, 30]) { process.stdout.write(p + "%\\r"); await new Promise((r) => setTimeout(r, 150)); }\nconsole.log("done");';
    const r = await runCell(k.kernel(), `%%launch -n 2\n${body}`);
    expectOk(r);
    const segments = r.stdout.split(/(?<=[\r\n])/);
    for (const rank of [0, 1]) {
      expect(segments.filter((s) => s.startsWith(`[rank${rank}]: `))).toEqual([`[rank${rank}]: 10%\r`, `[rank${rank}]: 20%\r`, `[rank${rank}]: 30%\r`, `[rank${rank}]: done\n`]);
    }
    expect(segments.filter((s) => !s.startsWith('[rank'))).toEqual([]);
  });

  it('the live view shows the replay as its own state (header and rows agree) and its clock ticks about once a second while ranks print nothing', async () => {
    await runCell(k.kernel(), 'const slowToReplay = (() => { const t = Date.now(); while (Date.now() - t < 1500) {} return 1; })();');
    const r = await runCell(k.kernel(), '%%launch -n 2\nawait new Promise((resolve) => setTimeout(resolve, 3000));\nconsole.log("done " + slowToReplay);', { timeoutMs: 30_000 });
    expectOk(r);
    const views = r.iopub
      .filter((m) => m.header.msg_type === 'display_data' || m.header.msg_type === 'update_display_data')
      .map((m) => ({ at: Date.parse(m.header.date), text: String((m.content as { data: Record<string, unknown> }).data['text/plain'] ?? '') }))
      .filter((v) => v.text.startsWith('tslaunch: '));
    const header = (t: string) => t.split('\n')[0];
    const rowStates = (t: string) => t.split('\n').slice(1).filter((l) => l.startsWith('  rank')).map((l) => l.trim().split(/\s+/)[6]);
    // Replay: the header says "replaying" exactly when the rows do, never "running" over "starting" rows.
    const replaying = views.filter((v) => header(v.text).includes(', replaying, '));
    expect(replaying.length, views.map((v) => v.text).join('\n---\n')).toBeGreaterThan(0);
    for (const v of replaying) expect(rowStates(v.text).every((st) => st === 'replaying' || st === 'starting'), v.text).toBe(true);
    for (const v of views.filter((v) => header(v.text).includes(', running, '))) expect(rowStates(v.text), v.text).toContain('running');
    // The body prints nothing for 3 s: the view still updates about once a second, with a moving clock.
    const running = views.filter((v) => header(v.text).includes(', running, '));
    expect(running.length, running.map((v) => header(v.text)).join('\n')).toBeGreaterThanOrEqual(3);
    const clocks = running.map((v) => Number(/, ([\d.]+) s, restarts/.exec(header(v.text))![1]));
    expect(clocks[clocks.length - 1] - clocks[0]).toBeGreaterThanOrEqual(1.5);
    const gaps = running.slice(1).map((v, i) => v.at - running[i].at);
    expect(Math.max(...gaps)).toBeLessThan(1800);
  });

  it('%%launch --help prints the usage to stdout and starts nothing', async () => {
    const sampler = sampleWorkers(e2e, k.pid());
    const r = await runCell(k.kernel(), '%%launch --help\nconsole.log("not run");');
    const seen = await sampler.stop();
    expectOk(r);
    expect(r.stdout).toContain('Usage: %%launch');
    for (const flag of ['--num_processes', '--mixed_precision', '--log_line_prefix_template', '--max_restarts']) {
      expect(r.stdout).toContain(flag);
    }
    expect(r.stdout).not.toContain('not run');
    expect(seen).toEqual([]);
  });
});

describe('%%launch failures', () => {
  const k = useKernel();

  it('a failing rank stops the others and the cell shows one LaunchError naming the rank, exit code and cell line', async () => {
    const cell = [
      '%%launch -n 4',
      'const rank = Number(process.env.RANK);',
      'if (rank === 1) {',
      '  throw new Error("rank one fails");',
      '}',
      'console.log("waiting");',
      'await new Promise((resolve) => setTimeout(resolve, 60_000));',
    ].join('\n');
    const t0 = Date.now();
    const r = await runCell(k.kernel(), cell, { timeoutMs: 30_000 });
    const ms = Date.now() - t0;
    expect(ms, 'the other ranks (sleeping 60 s) were not stopped').toBeLessThan(15_000);
    expect(r.reply.content.status).toBe('error');
    const n = r.reply.content.execution_count;
    const err = onlyError(r);
    expect(err.ename).toBe('LaunchError');
    expect(err.evalue).toBe('rank 1 failed first (exit code 1): Error: rank one fails');
    const tb = err.traceback.join('\n');
    expect(tb).toContain('rank 1');
    expect(tb).toContain('exit code 1');
    expect(tb).toContain(`at cell [${n}], line 4`);
    // One report: the error text is in the error output only, not also in the streams.
    expect(r.stdout + r.stderr).not.toContain('rank one fails');
    // The error output is the last output of the cell.
    expect(r.outputs[r.outputs.length - 1]).toBe(err);
  });

  it('the report says per rank what happened: finished on its own, failed, or stopped by tslaunch', async () => {
    const body = [
      'const rank = Number(process.env.RANK);',
      'if (rank === 1) { await new Promise((r) => setTimeout(r, 800)); throw new Error("rank one fails"); }',
      'if (rank === 2) await new Promise((r) => setTimeout(r, 60_000));',
    ].join('\n');
    const r = await runCell(k.kernel(), `%%launch -n 3\n${body}`, { timeoutMs: 30_000 });
    const error = onlyError(r);
    expect(error.evalue).toBe('rank 1 failed first (exit code 1): Error: rank one fails');
    expect(error.traceback.at(-1)).toBe('No other rank failed. Rank 0 had already finished (exit code 0). Rank 2 was stopped by tslaunch.');
  });

  it('the cell line in the traceback follows the throw (helper from an earlier cell, line 3 of the body)', async () => {
    const def = await runCell(k.kernel(), 'function check(ok: boolean): void {\n  if (!ok) {\n    throw new TypeError("check failed");\n  }\n}');
    expectOk(def);
    const defCount = def.reply.content.execution_count;
    const r = await runCell(k.kernel(), '%%launch -n 2\nconst rank = Number(process.env.RANK);\ncheck(rank !== 0);\nconsole.log("passed");');
    expect(r.reply.content.status).toBe('error');
    const n = r.reply.content.execution_count;
    const err = onlyError(r);
    expect(err.ename).toBe('LaunchError');
    expect(err.evalue).toBe('rank 0 failed first (exit code 1): TypeError: check failed');
    const tb = err.traceback.join('\n');
    // (the receiver's name, e.g. "Proxy.check", depends on how the session's exports are kept)
    expect(tb).toMatch(new RegExp(`at (\\w+\\.)?check \\(cell \\[${defCount}\\], line 3\\)`));
    expect(tb).toContain(`cell [${n}], line 3`);
  });

  it('a rank killed by a signal is reported with the signal', async () => {
    const cell = [
      '%%launch -n 2',
      'if (process.env.RANK === "1") {',
      '  process.kill(process.pid, "SIGKILL");',
      '}',
      'await new Promise((resolve) => setTimeout(resolve, 60_000));',
    ].join('\n');
    const t0 = Date.now();
    const r = await runCell(k.kernel(), cell, { timeoutMs: 30_000 });
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(r.reply.content.status).toBe('error');
    const err = onlyError(r);
    expect(err.ename).toBe('LaunchError');
    expect(err.evalue).toMatch(/^rank 1 failed first \(killed by SIGKILL\)/);
    expect(err.traceback.join('\n')).toContain('SIGKILL');
  });

  it('a rank that calls process.exit(3) is reported with exit code 3', async () => {
    const r = await runCell(k.kernel(), '%%launch -n 2\nif (process.env.RANK === "0") process.exit(3);\nawait new Promise((resolve) => setTimeout(resolve, 60_000));', {
      timeoutMs: 30_000,
    });
    const err = onlyError(r);
    expect(err.ename).toBe('LaunchError');
    expect(err.evalue).toMatch(/^rank 0 failed first \(exit code 3\)/);
  });

  it('a type error in the body is a CompileError and no worker is ever started', async () => {
    const sampler = sampleWorkers(e2e, k.pid());
    const r = await runCell(k.kernel(), '%%launch -n 4\nconsole.log("never");\nconst n: number = "not a number";');
    const seen = await sampler.stop();
    expect(r.reply.content.status).toBe('error');
    const err = onlyError(r);
    expect(err.ename).toBe('CompileError');
    expect(err.evalue).toMatch(/^line 3, column \d+: .*not assignable to type 'number'/);
    expect(err.traceback.join('\n')).toContain('nothing was started');
    expect(r.stdout).toBe('');
    expect(seen, 'worker processes appeared').toEqual([]);
    expect(e2e.launchDirs()).toEqual([]);
  });

  it('an unknown flag is a UsageError that lists the accepted flags; nothing starts', async () => {
    const sampler = sampleWorkers(e2e, k.pid());
    const r = await runCell(k.kernel(), '%%launch -n 2 --bogus 1\nconsole.log("never");');
    const seen = await sampler.stop();
    expect(r.reply.content.status).toBe('error');
    const err = onlyError(r);
    expect(err.ename).toBe('UsageError');
    expect(err.evalue).toContain('--bogus');
    for (const flag of ['--num_processes', '--mixed_precision', '--log_line_prefix_template', '--max_restarts']) {
      expect(err.evalue).toContain(flag);
    }
    expect(r.stdout).toBe('');
    expect(seen).toEqual([]);
  });

  it('a bad flag value is a UsageError that says what is accepted', async () => {
    const r = await runCell(k.kernel(), '%%launch -n zero\nconsole.log("never");');
    const err = onlyError(r);
    expect(err.ename).toBe('UsageError');
    expect(err.evalue).toContain('positive integer');
    expect(err.evalue).toContain('"zero"');
  });

  it('after failures, the next launch in the same kernel works', async () => {
    const r = await runCell(k.kernel(), '%%launch -n 2\nconsole.log("fine");');
    expectOk(r);
    expect(linesOf(r.stdout).sort()).toEqual(['[rank0]: fine', '[rank1]: fine']);
  });
});

describe('//%tslaunch:no-replay', () => {
  const k = useKernel();
  const kernelOnlyCell = [
    '(globalThis as any).kernelOnly = "set in the kernel";',
    'if (process.env.RANK !== undefined) {',
    '  throw new Error("this cell must not run in a worker");',
    '}',
  ].join('\n');

  it('a cell marked //%tslaunch:no-replay runs in the kernel but is not replayed in workers', async () => {
    const marked = await runCell(k.kernel(), `//%tslaunch:no-replay\n${kernelOnlyCell}`);
    expectOk(marked);
    const inKernel = await runCell(k.kernel(), '(globalThis as any).kernelOnly');
    expect(inKernel.outputs).toEqual([expect.objectContaining({ output_type: 'execute_result', data: { 'text/plain': 'set in the kernel' } })]);
    const r = await runCell(k.kernel(), '%%launch -n 2\nconsole.log("kernelOnly:", String((globalThis as any).kernelOnly));');
    expectOk(r);
    const byRank = stdoutByRank(r);
    expect(byRank.get(0)).toEqual(['kernelOnly: undefined']);
    expect(byRank.get(1)).toEqual(['kernelOnly: undefined']);
  });

  it('without the marker the same cell is replayed, and its failure is reported as a replay failure', async () => {
    const unmarked = await runCell(k.kernel(), kernelOnlyCell);
    expectOk(unmarked);
    const n = unmarked.reply.content.execution_count;
    const r = await runCell(k.kernel(), '%%launch -n 2\nconsole.log("body");');
    expect(r.reply.content.status).toBe('error');
    const err = onlyError(r);
    expect(err.ename).toBe('LaunchError');
    expect(err.evalue).toMatch(new RegExp(`^rank \\d failed first while replaying cell \\[${n}\\] \\(exit code 1\\): Error: this cell must not run in a worker`));
    expect(r.stdout).not.toContain('body');
  });
});


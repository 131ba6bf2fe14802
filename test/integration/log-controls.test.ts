/**
 * torchrun's log controls (issue 12, item 9): --log_dir writes every rank's output of every attempt
 * to DIR/<rdzv_id>/attempt_<n>/<rank>/{stdout,stderr}.log without the prefix; --redirects keeps
 * streams out of the cell (files only); --local_ranks_filter shows only some ranks; the launch says
 * where the files are. Through the built package's Launch, and `tslaunch run` for the flags.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { LaunchEvent } from '../../launcher/contract';
import { loadDist, outputText, runLaunch, spawnNode, childEnv, CLI, useLeakChecks, withTimeout } from '../fixtures/support';

const leak = useLeakChecks('log-controls', 'the launch');

const BODY = `
  const r = process.env.RANK;
  console.log('out ' + r + ' a');
  console.error('err ' + r);
  process.stdout.write('out ' + r + ' b\\n');
`;

const notices = (events: LaunchEvent[]) => events.filter((e): e is Extract<LaunchEvent, { type: 'notice' }> => e.type === 'notice').map((e) => e.text);
const read = (...parts: string[]) => fs.readFileSync(path.join(...parts), 'utf8');

describe('--log_dir, --redirects, --tee, --local_ranks_filter', () => {
  it('--log_dir: each rank\'s stdout.log and stderr.log in torchrun\'s layout, unprefixed; the cell keeps its output and says where the files are', async () => {
    const dir = path.join(leak.tmp.dir, `logs-${leak.marker}`);
    const { result, events } = await runLaunch({ numProcesses: 2, marker: leak.marker, body: BODY, options: { logDir: dir, rdzvId: 'job9' } });
    expect(result.outcome).toBe('succeeded');
    const attempt = path.join(dir, 'job9', 'attempt_1');
    for (const rank of [0, 1]) {
      expect(read(attempt, String(rank), 'stdout.log')).toBe(`out ${rank} a\nout ${rank} b\n`);
      expect(read(attempt, String(rank), 'stderr.log')).toBe(`err ${rank}\n`);
      expect(outputText(events, rank, 'stdout')).toBe(`[rank${rank}]: out ${rank} a\n[rank${rank}]: out ${rank} b\n`);
    }
    expect(notices(events)).toContain(`logs of attempt 1: ${attempt}/<rank>/stdout.log and stderr.log`);
    fs.rmSync(dir, { recursive: true });
  });

  it('--redirects 1 keeps stdout out of the cell (files only); per rank, 1:3 keeps everything of local rank 1 out', async () => {
    const dir = path.join(leak.tmp.dir, `logs-${leak.marker}`);
    const first = await runLaunch({ numProcesses: 2, marker: leak.marker, body: BODY, options: { logDir: dir, redirects: '1' } });
    expect(first.result.outcome).toBe('succeeded');
    for (const rank of [0, 1]) {
      expect(outputText(first.events, rank, 'stdout')).toBe('');
      expect(outputText(first.events, rank, 'stderr')).toBe(`[rank${rank}]: err ${rank}\n`);
      expect(read(dir, 'none', 'attempt_1', String(rank), 'stdout.log')).toBe(`out ${rank} a\nout ${rank} b\n`);
    }
    const second = await runLaunch({ numProcesses: 2, marker: leak.marker, body: BODY, options: { logDir: dir, redirects: '1:3' } });
    expect(outputText(second.events, 1)).toBe('');
    expect(outputText(second.events, 0, 'stdout')).toBe('[rank0]: out 0 a\n[rank0]: out 0 b\n');
    expect(read(dir, 'none', 'attempt_1', '1', 'stderr.log')).toBe('err 1\n');
    fs.rmSync(dir, { recursive: true });
  });

  it('--local_ranks_filter 0 shows rank 0 only and says the others are not kept without --log_dir; with it, every rank is in the files', async () => {
    const plain = await runLaunch({ numProcesses: 3, marker: leak.marker, body: BODY, options: { localRanksFilter: '0' } });
    expect(outputText(plain.events, 0)).not.toBe('');
    expect(outputText(plain.events, 1) + outputText(plain.events, 2)).toBe('');
    expect(notices(plain.events)).toContain('showing the output of local rank 0 only (--local_ranks_filter); add --log_dir to keep the others\' output in files');
    const dir = path.join(leak.tmp.dir, `logs-${leak.marker}`);
    const kept = await runLaunch({ numProcesses: 3, marker: leak.marker, body: BODY, options: { localRanksFilter: [0, 2], logDir: dir } });
    expect(outputText(kept.events, 1)).toBe('');
    expect(outputText(kept.events, 2, 'stderr')).toBe('[rank2]: err 2\n');
    expect(read(dir, 'none', 'attempt_1', '1', 'stdout.log')).toBe('out 1 a\nout 1 b\n');
    fs.rmSync(dir, { recursive: true });
  });

  it('a restarted group writes attempt_2 beside attempt_1', async () => {
    const dir = path.join(leak.tmp.dir, `logs-${leak.marker}`);
    const body = `console.log('restart ' + process.env.TORCHELASTIC_RESTART_COUNT); if (process.env.RANK === '1' && process.env.TORCHELASTIC_RESTART_COUNT === '0') process.exit(3);`;
    const { result } = await runLaunch({ numProcesses: 2, marker: leak.marker, body, options: { logDir: dir, maxRestarts: 1 } });
    expect(result.outcome).toBe('succeeded');
    expect(read(dir, 'none', 'attempt_1', '1', 'stdout.log')).toBe('restart 0\n');
    expect(read(dir, 'none', 'attempt_2', '1', 'stdout.log')).toBe('restart 1\n');
    fs.rmSync(dir, { recursive: true });
  });

  it('refuses --redirects or --tee without --log_dir, and a bad value, saying what is accepted (API and tslaunch run)', async () => {
    const api = loadDist();
    expect(() => api.optionsFromObject({ redirects: 3 })).toThrow(/^redirects needs logDir: it names the files the output goes to\. Example: \{ redirects: 3, logDir: "logs" \}$/);
    expect(() => api.optionsFromObject({ tee: '4', logDir: 'x' })).toThrow(/tee must be 0 \(none\), 1 \(stdout\), 2 \(stderr\) or 3 \(both\), or per local rank like 0:1,1:2, got "4"/);
    const child = spawnNode([CLI, 'run', '--tee', '3', '-n', '1', 'x.js'], { env: childEnv(leak.tmp, leak.marker) });
    const exit = await withTimeout(child.exited, 20_000, 'tslaunch run');
    expect(exit.code).toBe(2);
    expect(child.stderr()).toContain('--tee needs --log_dir: it names the files the output goes to. Example: tslaunch run --tee 3 --log_dir logs script.ts');
  });
});

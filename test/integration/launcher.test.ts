/**
 * The launcher's contract with real processes and sockets (no kernel): `Launch` from the BUILT
 * package (its workers run dist/launcher/worker/worker-main.js; build first), plain-JavaScript bodies.
 * Every test ends with nothing left: no worker process, no tslaunch-* folder in the private TMPDIR.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as net from 'node:net';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Dealer } from 'zeromq';
import type { LaunchEvent } from '../../launcher/contract';
import { freePort } from '../helpers/free-port';
import { isAlive, waitUntilGone } from '../helpers/leftovers';
import {
  FIXTURES,
  REPO_ROOT,
  childEnv,
  makeLaunch,
  outputText,
  runLaunch,
  sleep,
  spawnNode,
  withTimeout,
  useLeakChecks,
} from '../fixtures/support';

const leak = useLeakChecks('launcher', 'the test');

type StateEvent = Extract<LaunchEvent, { type: 'state' }>;
const finalStates = (events: LaunchEvent[]) => {
  const last = new Map<number, StateEvent['worker']>();
  for (const e of events) if (e.type === 'state') last.set(e.worker.rank, e.worker);
  return last;
};

describe('Launch (single node)', () => {
  it('starts N ranks, each with its own torchrun/Accelerate environment (rank files 0..N-1)', async () => {
    const n = 3;
    const out = leak.tmp.scratch('rankfiles');
    const port = await freePort();
    const keys = [
      'RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'LOCAL_WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT', 'TORCHELASTIC_RESTART_COUNT',
      'TORCHELASTIC_MAX_RESTARTS', 'GROUP_RANK', 'GROUP_WORLD_SIZE', 'ACCELERATE_MIXED_PRECISION',
    ];
    const body = `
      const fs = require('fs'), path = require('path');
      const env = Object.fromEntries(${JSON.stringify(keys)}.map((k) => [k, process.env[k]]));
      env.pid = process.pid;
      fs.writeFileSync(path.join(${JSON.stringify(out)}, 'rank-' + process.env.RANK + '.json'), JSON.stringify(env));
    `;
    let dirsDuringRun: string[] = [];
    const { result, events } = await runLaunch({
      numProcesses: n, marker: leak.marker, body, options: { mixedPrecision: 'bf16', usePort: port },
      onEvent: (e) => {
        if (e.type === 'started') dirsDuringRun = leak.tmp.launchDirs();
      },
    });
    expect(result).toMatchObject({ outcome: 'succeeded', failures: [], restarts: 0, worldSize: n, droppedMessages: 0 });
    // The launch had its folder while it ran; it is gone now (afterEach checks too).
    expect(dirsDuringRun).toHaveLength(1);
    expect(leak.tmp.launchDirs()).toEqual([]);

    expect(fs.readdirSync(out).sort()).toEqual(['rank-0.json', 'rank-1.json', 'rank-2.json']);
    const started = new Map(events.flatMap((e) => (e.type === 'started' ? [[e.rank, e.pid] as const] : [])));
    for (let rank = 0; rank < n; rank++) {
      const env = JSON.parse(fs.readFileSync(path.join(out, `rank-${rank}.json`), 'utf8'));
      expect(env).toEqual({
        RANK: String(rank), LOCAL_RANK: String(rank), WORLD_SIZE: String(n), LOCAL_WORLD_SIZE: String(n),
        MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), TORCHELASTIC_RESTART_COUNT: '0', TORCHELASTIC_MAX_RESTARTS: '0',
        GROUP_RANK: '0', GROUP_WORLD_SIZE: '1', ACCELERATE_MIXED_PRECISION: 'bf16', pid: started.get(rank),
      });
    }
    // Every rank went starting -> running -> succeeded.
    for (const [, w] of finalStates(events)) expect(w).toMatchObject({ state: 'succeeded', exitCode: 0, signal: null });
  });

  it('delivers 4 ranks x 50 000 lines through output events, prefixed, whole lines, in order per rank', async () => {
    const n = 4;
    const lines = 50_000;
    const body = `
      const rank = process.env.RANK;
      for (let i = 0; i < ${lines}; i++) console.log('r' + rank + ' line ' + i);
    `;
    const t0 = performance.now();
    const { result, events } = await runLaunch({ numProcesses: n, marker: leak.marker, body });
    const seconds = (performance.now() - t0) / 1000;
    expect(result.outcome).toBe('succeeded');
    for (const e of events) if (e.type === 'output') expect(e.text.endsWith('\n')).toBe(true);
    for (let rank = 0; rank < n; rank++) {
      const got = outputText(events, rank, 'stdout').split('\n');
      expect(got.pop()).toBe('');
      expect(got.length).toBe(lines);
      let bad = -1;
      for (let i = 0; i < lines; i++) {
        if (got[i] !== `[rank${rank}]: r${rank} line ${i}`) {
          bad = i;
          break;
        }
      }
      expect(bad === -1 ? 'all in order' : `line ${bad}: ${JSON.stringify(got[bad])}`).toBe('all in order');
      expect(outputText(events, rank, 'stderr')).toBe('');
    }
    console.log(`[launcher.test] ${n} x ${lines} lines in ${seconds.toFixed(2)} s`);
  }, 120_000);

  it('drops forged and unsigned messages on the log channel and counts them in droppedMessages', async () => {
    // Rank 0 connects its own DEALER to the launch's channel (the endpoint is in its environment)
    // and sends messages signed with a wrong key, an unsigned one and a malformed one.
    const body = `
      const { Dealer } = require('zeromq');
      const crypto = require('crypto');
      if (process.env.RANK === '0') {
        const forger = new Dealer({ routingId: 'forger-' + process.pid, linger: 2000 });
        forger.connect(process.env.TSLAUNCH_AGENT_ENDPOINT);
        const wrongKey = crypto.randomBytes(32);
        const sign = (frames) => { const h = crypto.createHmac('sha256', wrongKey); for (const f of frames) h.update(f); return h.digest(); };
        const msg = (m) => Buffer.from(JSON.stringify(m));
        const stream = msg({ type: 'stream', name: 'stdout', text: 'FORGED output\\n' });
        const error = msg({ type: 'error', error: { ename: 'Forged', evalue: 'FORGED error', stack: '', phase: 'body' } });
        await forger.send([stream, sign([stream])]);                 // wrong key
        await forger.send([error, sign([error])]);                   // wrong key
        await forger.send([msg({ type: 'result' })]);                // unsigned
        await forger.send([stream, stream, stream, sign([stream])]); // too many frames
        await new Promise((r) => setTimeout(r, 500));
        forger.close();
      }
      console.log('real work from rank ' + process.env.RANK);
    `;
    const { result, events } = await runLaunch({ numProcesses: 2, marker: leak.marker, body });
    expect(result.outcome).toBe('succeeded');
    expect(result.failures).toEqual([]);
    expect(result.droppedMessages).toBe(4);
    const all = events.filter((e) => e.type === 'output').map((e) => (e as { text: string }).text).join('');
    expect(all).not.toContain('FORGED');
    expect(outputText(events, 0)).toBe('[rank0]: real work from rank 0\n');
    expect(outputText(events, 1)).toBe('[rank1]: real work from rank 1\n');
  });

  it('keeps the launch keys out of every worker environment (/proc/PID/environ): they come over the lifeline', async () => {
    const body = `
      const fs = require('fs');
      const entries = fs.readFileSync('/proc/' + process.pid + '/environ', 'utf8').split('\\0').filter(Boolean);
      const secrets = entries.filter((e) => /KEY=/.test(e) || /=[0-9a-f]{64}$/.test(e));
      console.log('secrets in environ: ' + secrets.length + ' of ' + entries.length);
      const { allReduce } = require('tslaunch');
      console.log('sum ' + (await allReduce(new Float64Array([Number(process.env.RANK) + 1])))[0]);
    `;
    const { result, events } = await runLaunch({ numProcesses: 2, marker: leak.marker, body });
    expect(result.outcome, JSON.stringify(result.failures)).toBe('succeeded');
    for (const rank of [0, 1]) {
      expect(outputText(events, rank)).toMatch(new RegExp(`^\\[rank${rank}\\]: secrets in environ: 0 of \\d+\\n\\[rank${rank}\\]: sum 3\\n$`));
    }
  });

  it('drops a sealed message replayed on the log channel (same connection or another), and counts it', async () => {
    const { LogChannel } = createRequire(path.join(REPO_ROOT, 'package.json'))('./dist/launcher/channel/index.js') as typeof import('../../launcher/channel');
    const { SealedLink } = createRequire(path.join(REPO_ROOT, 'package.json'))('./dist/launcher/contract/index.js') as typeof import('../../launcher/contract');
    const key = crypto.randomBytes(32);
    const got: string[] = [];
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chan-'));
    const channel = await LogChannel.open(`ipc://${dir}/agent.sock`, key, (m) => got.push(m.message.type === 'stream' ? m.message.text : m.message.type));
    const sockets: Dealer[] = [];
    try {
      const worker = new Dealer({ routingId: 'rank0-pid1', linger: 0 });
      const other = new Dealer({ routingId: 'rank0-pid2', linger: 0 });
      sockets.push(worker, other);
      worker.connect(channel.endpoint);
      other.connect(channel.endpoint);
      const link = new SealedLink(key, 'rank0-pid1');
      const once = link.seal({ type: 'stream', name: 'stdout', text: 'once' });
      await worker.send(once);
      await worker.send(once); // replayed on the same connection
      await other.send(once); // replayed from another connection (another sender name)
      await worker.send(link.seal({ type: 'stream', name: 'stdout', text: 'twice' }));
      for (const deadline = Date.now() + 5000; got.length < 2 && Date.now() < deadline; ) await sleep(20);
      await sleep(200);
      expect(got).toEqual(['once', 'twice']);
      expect(channel.dropped).toBe(2);
    } finally {
      for (const s of sockets) s.close();
      channel.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('replaces a busy use_port on a single node, says so in a notice, and hands the new port to the workers', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const busy = (blocker.address() as net.AddressInfo).port;
    try {
      const { result, events } = await runLaunch({
        numProcesses: 2, marker: leak.marker, options: { usePort: busy, masterAddr: '127.0.0.1' },
        body: `console.log('MASTER_PORT=' + process.env.MASTER_PORT);`,
      });
      expect(result.outcome).toBe('succeeded');
      const notices = events.filter((e): e is Extract<LaunchEvent, { type: 'notice' }> => e.type === 'notice');
      expect(notices).toHaveLength(1);
      const m = /use_port (\d+) is busy on 127\.0\.0\.1; the workers get MASTER_PORT=(\d+) instead/.exec(notices[0].text);
      expect(m, notices[0].text).not.toBeNull();
      expect(Number(m![1])).toBe(busy);
      const chosen = Number(m![2]);
      expect(chosen).not.toBe(busy);
      expect(outputText(events, 0)).toBe(`[rank0]: MASTER_PORT=${chosen}\n`);
      expect(outputText(events, 1)).toBe(`[rank1]: MASTER_PORT=${chosen}\n`);
      // The notice comes before any worker starts.
      expect(events.findIndex((e) => e.type === 'notice')).toBeLessThan(events.findIndex((e) => e.type === 'started'));
    } finally {
      blocker.close();
    }
  });

  it('keeps a free use_port as given, without a notice', async () => {
    const port = await freePort();
    const { result, events } = await runLaunch({
      numProcesses: 1, marker: leak.marker, options: { usePort: port }, body: `console.log(process.env.MASTER_PORT);`,
    });
    expect(result.outcome).toBe('succeeded');
    expect(events.filter((e) => e.type === 'notice')).toEqual([]);
    expect(outputText(events, 0)).toBe(`[rank0]: ${port}\n`);
  });

  it('stops the other ranks (SIGTERM, then SIGKILL after the grace period) when one fails; failures[0] is that rank', async () => {
    const graceMs = 1000;
    // All ranks meet at a barrier (so rank 0's SIGTERM handler is in place), then rank 1 fails.
    // Rank 0 ignores SIGTERM (it must get SIGKILL after the grace), rank 2 does not.
    const body = `
      const { waitForEveryone } = require('tslaunch');
      const rank = Number(process.env.RANK);
      if (rank === 0) process.on('SIGTERM', () => {});
      await waitForEveryone();
      if (rank === 1) throw new Error('rank one broke');
      await new Promise((r) => setTimeout(r, 60_000));
    `;
    const t: Record<string, number> = {};
    const { result, events } = await runLaunch({
      numProcesses: 3, marker: leak.marker, body, stopGraceMs: graceMs,
      onEvent: (e) => {
        if (e.type === 'state' && e.worker.rank === 1 && e.worker.state === 'failed') t.failed = performance.now();
        if (e.type === 'done') t.done = performance.now();
      },
    });
    expect(result.outcome).toBe('failed');
    expect(result.failures).toHaveLength(1);
    expect(result.failures[0]).toMatchObject({ rank: 1, nodeRank: 0, exitCode: 1, signal: null });
    expect(result.failures[0].error).toMatchObject({ ename: 'Error', evalue: 'rank one broke', phase: 'body' });
    const states = finalStates(events);
    expect(states.get(0)).toMatchObject({ state: 'stopped', signal: 'SIGKILL' });
    expect(states.get(2)).toMatchObject({ state: 'stopped', signal: 'SIGTERM' });
    expect(states.get(1)).toMatchObject({ state: 'failed', exitCode: 1 });
    const stoppedIn = t.done - t.failed;
    // SIGKILL comes after the grace period, not much later (2-core machine: generous margin).
    expect(stoppedIn).toBeGreaterThanOrEqual(graceMs - 100);
    expect(stoppedIn).toBeLessThan(graceMs + 2500);
  });

  it('prefixes with log_line_prefix_template; ends a last partial line; prefixes raw writes to fd 1/2 too', async () => {
    const body = `
      const fs = require('fs');
      console.log('via console');
      fs.writeSync(1, 'raw fd 1\\n');
      fs.writeSync(2, 'raw fd 2\\n');
      process.stdout.write('no newline at the end');
    `;
    const { result, events } = await runLaunch({
      numProcesses: 2, marker: leak.marker, body, options: { logLinePrefixTemplate: '<${node_rank}/${local_rank}/${rank} ${role_name} $unknown> ' },
    });
    expect(result.outcome).toBe('succeeded');
    for (const r of [0, 1]) {
      const p = `<0/${r}/${r} default $unknown> `;
      const out = outputText(events, r, 'stdout');
      expect(out.split('\n').filter(Boolean).sort()).toEqual([`${p}no newline at the end`, `${p}raw fd 1`, `${p}via console`].sort());
      expect(out.endsWith('\n')).toBe(true);
      expect(outputText(events, r, 'stderr')).toBe(`${p}raw fd 2\n`);
    }
  });

  it("loses no output when the body calls process.exit() right after writing", async () => {
    const body = `
      for (let i = 0; i < 20000; i++) console.log('line ' + i);
      process.exit(0);
    `;
    const { result, events } = await runLaunch({ numProcesses: 2, marker: leak.marker, body });
    expect(result.outcome).toBe('succeeded');
    for (const r of [0, 1]) {
      const lines = outputText(events, r, 'stdout').split('\n').filter(Boolean);
      expect(lines.length).toBe(20000);
      expect(lines[19999]).toBe(`[rank${r}]: line 19999`);
    }
  });

  it("maps a failing rank's stack to the cell's lines", async () => {
    const body = {
      executionCount: 7, async: true, jsLineToCellLine: [4, 5, 6],
      js: ["const x = 1;", "function boom() { throw new RangeError('mapped ' + x); }", "boom();"].join('\n'),
    };
    const { result } = await runLaunch({ numProcesses: 1, marker: leak.marker, body });
    expect(result.outcome).toBe('failed');
    const error = result.failures[0].error!;
    expect(error).toMatchObject({ ename: 'RangeError', evalue: 'mapped 1', phase: 'body' });
    expect(error.stack).toContain('cell [7], line 5');
    expect(error.stack).toContain('cell [7], line 6');
    expect(error.stack).not.toMatch(/worker-main|tslaunch-launch-cell-7\.js/);
  });

  it('removes the launch folder after a success, a failure and an interrupt()', async () => {
    const seen: string[][] = [];
    const watch = (e: LaunchEvent) => {
      if (e.type === 'started') seen.push(leak.tmp.launchDirs());
    };
    const ok = await runLaunch({ numProcesses: 1, marker: leak.marker, body: `1;`, onEvent: watch });
    expect(ok.result.outcome).toBe('succeeded');
    expect(leak.tmp.launchDirs()).toEqual([]);

    const bad = await runLaunch({ numProcesses: 1, marker: leak.marker, body: `process.exit(3);`, onEvent: watch });
    expect(bad.result.outcome).toBe('failed');
    expect(bad.result.failures[0]).toMatchObject({ rank: 0, exitCode: 3 });
    expect(leak.tmp.launchDirs()).toEqual([]);

    const events: LaunchEvent[] = [];
    const running = new Set<number>();
    const launch = makeLaunch(
      {
        numProcesses: 2, marker: leak.marker, body: `await new Promise((r) => setTimeout(r, 60_000));`,
        onEvent: (e, l) => {
          watch(e);
          if (e.type === 'state' && e.worker.state === 'running') {
            running.add(e.worker.rank);
            if (running.size === 2) l.interrupt();
          }
        },
      },
      events,
    );
    const result = await withTimeout(launch.run(), 20_000, 'the interrupted launch');
    expect(result.outcome).toBe('interrupted');
    expect(result.failures).toEqual([]);
    for (const [, w] of finalStates(events)) expect(w.state).toBe('stopped');
    expect(leak.tmp.launchDirs()).toEqual([]);
    // Each launch had exactly one folder while it ran.
    expect(seen.every((dirs) => dirs.length === 1)).toBe(true);
    expect(seen.length).toBe(4);
  });

  it('stop() ends a running launch and resolves once every worker is gone', async () => {
    const events: LaunchEvent[] = [];
    let resolveRunning!: () => void;
    const allRunning = new Promise<void>((r) => (resolveRunning = r));
    const running = new Set<number>();
    const launch = makeLaunch(
      {
        numProcesses: 2, marker: leak.marker, body: `await new Promise((r) => setTimeout(r, 60_000));`,
        onEvent: (e) => {
          if (e.type === 'state' && e.worker.state === 'running' && running.add(e.worker.rank).size === 2) resolveRunning();
        },
      },
      events,
    );
    const run = launch.run();
    await withTimeout(allRunning, 20_000, 'both ranks running');
    const pids = launch.pids;
    expect(pids).toHaveLength(2);
    await withTimeout(launch.stop(), 10_000, 'stop()');
    expect(pids.filter(isAlive)).toEqual([]);
    expect((await run).outcome).toBe('interrupted');
    expect(leak.tmp.launchDirs()).toEqual([]);
  });

  it('kills its workers within 2 s when the agent process is SIGKILLed (lifeline), even a rank stuck in a synchronous wait, and the launch folder goes too', async () => {
    const agent = spawnNode([path.join(FIXTURES, 'agent-sleeps.js')], { env: childEnv(leak.tmp, leak.marker, { FIXTURE_NUM_PROCESSES: '3' }) });
    try {
      const m = await agent.waitFor(/PIDS (\[[^\]]*\])/, 'stdout', 30_000);
      const pids = JSON.parse(m[1]) as number[];
      expect(pids).toHaveLength(3);
      expect(pids.every(isAlive)).toBe(true);
      await sleep(300); // rank 1 and 2 are now blocked in Atomics.wait
      agent.kill('SIGKILL');
      const killedAt = performance.now();
      await agent.exited;
      const alive = await waitUntilGone(pids, 2000, 20);
      const tookMs = performance.now() - killedAt;
      expect(alive, `workers alive ${tookMs.toFixed(0)} ms after the agent died`).toEqual([]);
      // The agent could not remove its launch folder; the first worker to see the lifeline close does.
      await expect.poll(() => leak.tmp.launchDirs(), { timeout: 2000, interval: 50 }).toEqual([]);
    } finally {
      agent.kill('SIGKILL');
    }
  });
});

/**
 * What a rank starts ends with the launch (issue 11, item 7): plain children, detached ones (their
 * own session, reparented when their parent goes) and background processes holding the rank's
 * stdout, on every path — a normal end, a failing peer, an interrupt, and the agent's SIGKILL. The
 * suite's leak check (every process carrying the test's marker, after each test) backs each one up.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { LaunchEvent } from '../../launcher/contract';
import { isAlive, waitUntilGone } from '../helpers/leftovers';
import { FIXTURES, childEnv, makeLaunch, outputText, runLaunch, spawnNode, useLeakChecks, withTimeout } from '../fixtures/support';

const leak = useLeakChecks('descendants', 'the launch and everything its ranks started');

/** The pids a body printed as `CHILDREN [..]`. */
function childrenOf(events: LaunchEvent[], rank = 0): number[] {
  const m = /CHILDREN (\[[^\]]*\])/.exec(outputText(events, rank));
  expect(m, outputText(events, rank)).not.toBeNull();
  return JSON.parse(m![1]) as number[];
}

const SPAWN = `
  const { spawn, execSync } = require('child_process');
  const plain = spawn('sleep', ['30'], { stdio: 'ignore' });
  const detached = spawn('sh', ['-c', 'sleep 31 & echo $! > /dev/null; exec sleep 32'], { stdio: 'ignore', detached: true });
  detached.unref();
  plain.unref();
  console.log('CHILDREN ' + JSON.stringify([plain.pid, detached.pid]));
`;

describe('processes started by ranks end with the launch', () => {
  it('normal end: a plain child, a detached one (own session) and `sleep 30 &` holding stdout are gone when the launch returns', async () => {
    const body = `${SPAWN}
      execSync('sleep 33 &', { stdio: 'inherit' }); // holds the rank's stdout/stderr
      console.log('rank ' + process.env.RANK + ' done');
    `;
    const started = performance.now();
    const { result, events } = await runLaunch({ numProcesses: 2, marker: leak.marker, body, timeoutMs: 20_000 });
    const tookMs = performance.now() - started;
    expect(result.outcome, JSON.stringify(result.failures)).toBe('succeeded');
    expect(tookMs, 'the launch waited for the background sleep').toBeLessThan(10_000);
    for (const rank of [0, 1]) {
      const pids = childrenOf(events, rank);
      expect(pids.filter(isAlive), `rank ${rank}'s children after the launch`).toEqual([]);
    }
  }, 30_000);

  it('a failing peer: rank 0\'s children are gone when rank 1 fails and the launch reports it', async () => {
    const body = `
      if (process.env.RANK === '0') {
        ${SPAWN}
        await new Promise((r) => setTimeout(r, 30_000));
      } else {
        await new Promise((r) => setTimeout(r, 800));
        throw new Error('rank 1 fails');
      }
    `;
    const { result, events } = await runLaunch({ numProcesses: 2, marker: leak.marker, body, timeoutMs: 20_000 });
    expect(result.outcome).toBe('failed');
    expect(result.failures[0].rank).toBe(1);
    expect(childrenOf(events).filter(isAlive)).toEqual([]);
  }, 30_000);

  it('interrupt: a detached child of a rank that handles SIGINT itself is gone when the interrupted launch returns', async () => {
    const body = `
      process.on('SIGINT', () => console.log('rank ' + process.env.RANK + ' ignores SIGINT'));
      if (process.env.RANK === '0') { ${SPAWN} }
      await new Promise((r) => setTimeout(r, 30_000));
    `;
    const events: LaunchEvent[] = [];
    let children: number[] = [];
    const launch = makeLaunch(
      {
        numProcesses: 2, marker: leak.marker, body,
        onEvent: (e, l) => {
          if (e.type === 'output' && e.text.includes('CHILDREN')) {
            children = JSON.parse(/CHILDREN (\[[^\]]*\])/.exec(e.text)![1]) as number[];
            setTimeout(() => l.interrupt(), 300);
          }
        },
      },
      events,
    );
    const result = await withTimeout(launch.run(), 20_000, 'the interrupted launch');
    expect(result.outcome).toBe('interrupted');
    expect(children).toHaveLength(2);
    expect(children.filter(isAlive)).toEqual([]);
  }, 30_000);

  it('the agent SIGKILLed: the workers\' watchdogs end the plain and the detached child too, within 2 s', async () => {
    const agent = spawnNode([path.join(FIXTURES, 'agent-sleeps.js')], { env: childEnv(leak.tmp, leak.marker, { FIXTURE_NUM_PROCESSES: '2', FIXTURE_CHILDREN: '1' }) });
    try {
      const m = await agent.waitFor(/CHILDREN (\[[^\]]*\])/, 'stdout', 30_000);
      const children = JSON.parse(m[1]) as number[];
      const workers = JSON.parse((await agent.waitFor(/PIDS (\[[^\]]*\])/, 'stdout', 30_000))[1]) as number[];
      expect([...children, ...workers].every(isAlive)).toBe(true);
      agent.kill('SIGKILL');
      await agent.exited;
      expect(await waitUntilGone([...workers, ...children], 2000, 20), 'alive 2 s after the agent died').toEqual([]);
    } finally {
      agent.kill('SIGKILL');
    }
  }, 40_000);
});

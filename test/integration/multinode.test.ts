/**
 * Launches across nodes, on loopback: node 0 is a `Launch` of the built package in this process (or
 * `tslaunch run --num_nodes 2`), the other nodes are `tslaunch agent` processes sharing
 * TSLAUNCH_SECRET. Everything is checked from node 0: the joined nodes' ranks, outputs, barriers and
 * failures reach it. Nothing may be left on either side (both use this suite's private TMPDIR; every
 * process carries the test's marker).
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { deserialize } from 'node:v8';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { LaunchEvent } from '../../launcher/contract';
import { freePort } from '../helpers/free-port';
import { waitUntilGone, type TempSnapshot } from '../helpers/leftovers';
import {
  CLI,
  FIXTURES,
  REPO_ROOT,
  PrivateTmp,
  childEnv,
  expectClean,
  killMarked,
  loadDist,
  makeLaunch,
  outputText,
  randomId,
  runLaunch,
  sleep,
  spawnNode,
  withTimeout,
  type Child,
} from '../fixtures/support';

let tmp: PrivateTmp;
let marker: string;
let since: TempSnapshot;
let children: Child[] = [];
let stopAfter: { stop(): Promise<void> }[] = [];

beforeAll(() => {
  tmp = new PrivateTmp('multinode');
});
afterAll(() => tmp?.dispose());
beforeEach(() => {
  marker = randomId();
  since = tmp.snapshot();
  children = [];
  stopAfter = [];
});
afterEach(async () => {
  for (const l of stopAfter) await l.stop(); // a launch a failed test left waiting
  try {
    // The agents (started with --once) must have exited by themselves; their workers too.
    await expectClean(marker, since, 'the launch (both nodes)', 8000);
  } finally {
    for (const c of children) c.kill('SIGKILL');
    await killMarked(marker);
  }
});

const SECRET = 'loopback-test-secret';
const VIEW_MIME = 'application/vnd.tslaunch.launch.v1+json';

/** The kernel's live view, built (it runs in this process here, fed by the launch's events). */
function loadView(): typeof import('../../kernel/launch/launch-view') {
  return createRequire(path.join(REPO_ROOT, 'package.json'))('./dist/kernel/launch/launch-view.js');
}

function startAgent(args: string[], secret = SECRET): Child {
  const child = spawnNode([CLI, 'agent', ...args], { env: childEnv(tmp, marker, { TSLAUNCH_SECRET: secret }) });
  children.push(child);
  return child;
}

/** Every rank prints its environment, passes a barrier, sleeps rank*250 ms, meets the others at a second barrier, prints the times. */
const WORLD_BODY = `
  const { waitForEveryone } = require('tslaunch');
  const e = process.env;
  console.log('env RANK=' + e.RANK + ' LOCAL_RANK=' + e.LOCAL_RANK + ' WORLD_SIZE=' + e.WORLD_SIZE + ' LOCAL_WORLD_SIZE=' + e.LOCAL_WORLD_SIZE + ' GROUP_RANK=' + e.GROUP_RANK + ' GROUP_WORLD_SIZE=' + e.GROUP_WORLD_SIZE);
  await waitForEveryone(); // start together, so the sleeps order the arrivals
  await new Promise((r) => setTimeout(r, Number(e.RANK) * 250));
  const arrive = Date.now();
  await waitForEveryone();
  console.log('barrier arrive=' + arrive + ' leave=' + Date.now());
`;

function checkWorld(events: LaunchEvent[], perNode: number, numNodes: number): void {
  const world = perNode * numNodes;
  const arrivals: number[] = [];
  const leaves: number[] = [];
  for (let rank = 0; rank < world; rank++) {
    const text = outputText(events, rank, 'stdout');
    const lines = text.split('\n').filter(Boolean);
    expect(lines, `rank ${rank}'s output`).toHaveLength(2);
    for (const l of lines) expect(l.startsWith(`[rank${rank}]: `), l).toBe(true);
    const node = Math.floor(rank / perNode);
    expect(lines[0]).toBe(
      `[rank${rank}]: env RANK=${rank} LOCAL_RANK=${rank % perNode} WORLD_SIZE=${world} LOCAL_WORLD_SIZE=${perNode} GROUP_RANK=${node} GROUP_WORLD_SIZE=${numNodes}`,
    );
    const m = /barrier arrive=(\d+) leave=(\d+)$/.exec(lines[1]);
    expect(m, lines[1]).not.toBeNull();
    arrivals.push(Number(m![1]));
    leaves.push(Number(m![2]));
  }
  const lastArrival = Math.max(...arrivals);
  // The arrivals are spread (rank r slept r*250 ms), so a rank leaving early would show.
  expect(lastArrival - arrivals[0]).toBeGreaterThanOrEqual(250 * (world - 1) - 250);
  for (const leave of leaves) expect(leave).toBeGreaterThanOrEqual(lastArrival);
  // started events for every global rank, with their node
  const started = events.filter((e): e is Extract<LaunchEvent, { type: 'started' }> => e.type === 'started');
  expect(started.map((e) => [e.rank, e.nodeRank]).sort((a, b) => a[0] - b[0])).toEqual(
    Array.from({ length: world }, (_, r) => [r, Math.floor(r / perNode)]),
  );
}

describe('two agents on loopback form one world', () => {
  it('static rendezvous: 2 x 2 ranks, outputs prefixed with global ranks at node 0, WORLD_SIZE 4, a barrier across nodes', async () => {
    const port = await freePort();
    const agent = startAgent(['--num_nodes', '2', '--node_rank', '1', '--master_addr', '127.0.0.1', '--use_port', String(port), '-n', '2', '--once']);
    const { result, events } = await runLaunch({ numProcesses: 2, marker, body: WORLD_BODY, secret: SECRET, options: { numNodes: 2, masterAddr: '127.0.0.1', usePort: port }, timeoutMs: 60_000 });
    expect(result).toMatchObject({ outcome: 'succeeded', failures: [], worldSize: 4, droppedMessages: 0 });
    checkWorld(events, 2, 2);
    const notices = events.filter((e) => e.type === 'notice').map((e) => (e as { text: string }).text);
    expect(notices[0]).toBe(`waiting for 1 more node(s) to join at 127.0.0.1:${port} (static rendezvous, rdzv_id none)`);
    expect(notices[1]).toMatch(/^2 nodes joined, world size 4: node 0 \(.+, 2\), node 1 \(.+, 2 processes\)$/);
    expect(await withTimeout(agent.exited, 15_000, 'the agent (--once)')).toEqual({ code: 0, signal: null });
    expect(agent.stderr()).toContain('joined as node 1 of 2: ranks 2..3 of 4');
    expect(agent.stderr()).toContain('launch finished: succeeded');
  }, 90_000);

  it('c10d rendezvous (--rdzv_backend c10d --rdzv_endpoint): 2 x 2 ranks, the same world', async () => {
    const port = await freePort();
    const endpoint = `127.0.0.1:${port}`;
    const agent = startAgent(['--num_nodes', '2', '--rdzv_backend', 'c10d', '--rdzv_endpoint', endpoint, '-n', '2', '--once']);
    const { result, events } = await runLaunch({ numProcesses: 2, marker, body: WORLD_BODY, secret: SECRET, options: { numNodes: 2, rdzvBackend: 'c10d', rdzvEndpoint: endpoint }, timeoutMs: 60_000 });
    expect(result).toMatchObject({ outcome: 'succeeded', worldSize: 4 });
    checkWorld(events, 2, 2);
    expect(events.find((e) => e.type === 'notice')).toMatchObject({ text: `waiting for 1 more node(s) to join at ${endpoint} (c10d rendezvous, rdzv_id none)` });
    expect((await withTimeout(agent.exited, 15_000, 'the agent')).code).toBe(0);
    expect(agent.stderr()).toContain('joined as node 1 of 2: ranks 2..3 of 4');
  }, 90_000);

  it('c10d assigns node ranks in join order (3 nodes)', async () => {
    const port = await freePort();
    const endpoint = `127.0.0.1:${port}`;
    const flags = ['--num_nodes', '3', '--rdzv_backend', 'c10d', '--rdzv_endpoint', endpoint, '-n', '1', '--once'];
    const events: LaunchEvent[] = [];
    let storeUp!: () => void;
    const listening = new Promise<void>((r) => (storeUp = r));
    const launch = makeLaunch(
      {
        numProcesses: 1, marker, secret: SECRET, options: { numNodes: 3, rdzvBackend: 'c10d', rdzvEndpoint: endpoint },
        body: `console.log('GROUP_RANK=' + process.env.GROUP_RANK + ' RANK=' + process.env.RANK);`,
        onEvent: (e) => {
          if (e.type === 'notice' && e.text.startsWith('waiting for')) storeUp();
        },
      },
      events,
    );
    const run = launch.run();
    stopAfter.push(launch);
    await withTimeout(listening, 20_000, 'the store');
    const first = startAgent(flags);
    await first.waitFor(/joining c10d rendezvous/, 'stderr', 20_000);
    await sleep(1500); // its join has reached the store
    const second = startAgent(flags);
    const result = await withTimeout(run, 60_000, 'the 3-node launch');
    expect(result).toMatchObject({ outcome: 'succeeded', worldSize: 3 });
    await withTimeout(Promise.all([first.exited, second.exited]), 15_000, 'the agents');
    expect(first.stderr()).toContain('joined as node 1 of 3: ranks 1..1 of 3');
    expect(second.stderr()).toContain('joined as node 2 of 3: ranks 2..2 of 3');
    for (const r of [0, 1, 2]) expect(outputText(events, r)).toBe(`[rank${r}]: GROUP_RANK=${r} RANK=${r}\n`);
  }, 90_000);

  it('refuses an agent with the wrong secret (it exits with code 3 and logs "refused"); the right one then joins', async () => {
    const port = await freePort();
    const flags = ['--num_nodes', '2', '--node_rank', '1', '--master_addr', '127.0.0.1', '--use_port', String(port), '-n', '1', '--once'];
    const events: LaunchEvent[] = [];
    let storeUp!: () => void;
    const listening = new Promise<void>((r) => (storeUp = r));
    const launch = makeLaunch(
      {
        numProcesses: 1, marker, secret: SECRET, options: { numNodes: 2, usePort: port }, body: `console.log('hi ' + process.env.RANK);`,
        onEvent: (e) => {
          if (e.type === 'notice' && e.text.startsWith('waiting for')) storeUp();
        },
      },
      events,
    );
    const run = launch.run();
    stopAfter.push(launch);
    await withTimeout(listening, 20_000, 'the store');
    const intruder = startAgent(flags, 'not-the-secret');
    const exit = await withTimeout(intruder.exited, 20_000, 'the refused agent');
    expect(exit).toEqual({ code: 3, signal: null });
    expect(intruder.stderr()).toMatch(/refused by the store: the encrypted handshake with 127\.0\.0\.1:\d+ failed 3 times\. This node's secret .* differs from node 0's/);
    expect(intruder.stderr()).not.toContain('joined as node');
    // The launch is still waiting; a node with the secret joins it.
    const agent = startAgent(flags);
    const result = await withTimeout(run, 60_000, 'the launch');
    expect(result.outcome, `${JSON.stringify(result.failures)}\nagent:\n${agent.stderr()}`).toBe('succeeded');
    expect(result.worldSize).toBe(2);
    // A wrong secret never completes the CURVE handshake: nothing of the intruder reached the store.
    expect(result.droppedMessages).toBe(0);
    expect(outputText(events, 0)).toBe('[rank0]: hi 0\n');
    expect(outputText(events, 1)).toBe('[rank1]: hi 1\n');
    expect((await withTimeout(agent.exited, 15_000, 'the agent')).code).toBe(0);
  }, 90_000);

  it('a failure on node 1 fails the launch: `tslaunch run --num_nodes 2` exits 1 with a report naming the rank', async () => {
    const port = await freePort();
    const net = ['--num_nodes', '2', '--master_addr', '127.0.0.1', '--use_port', String(port), '-n', '2'];
    const script = path.join(FIXTURES, 'multinode', 'fail-on-node1.ts');
    const node0 = spawnNode([CLI, 'run', ...net, script], { env: childEnv(tmp, marker, { TSLAUNCH_SECRET: SECRET }) });
    children.push(node0);
    const agent = startAgent([...net, '--node_rank', '1', '--once']);
    const exit = await withTimeout(node0.exited, 60_000, 'tslaunch run (node 0)');
    const stderr = node0.stderr();
    expect(exit, stderr).toEqual({ code: 1, signal: null });
    expect(stderr).toContain('LaunchError: rank 3 failed first (exit code 1): Error: node one broke');
    expect(stderr).toContain('rank 3:');
    for (let r = 0; r < 4; r++) expect(node0.stdout()).toContain(`[rank${r}]: rank ${r} of 4 on node ${r < 2 ? 0 : 1}\n`);
    const agentExit = await withTimeout(agent.exited, 15_000, 'the agent');
    expect(agentExit.code).toBe(1); // --once: the launch it served failed
    expect(agent.stderr()).toContain('launch finished: failed');
  }, 90_000);

  it('the same failure seen through Launch: failures[0] is rank 3 on node 1, the other ranks are stopped', async () => {
    const port = await freePort();
    const agent = startAgent(['--num_nodes', '2', '--node_rank', '1', '--master_addr', '127.0.0.1', '--use_port', String(port), '-n', '2', '--once']);
    const body = `
      const { waitForEveryone } = require('tslaunch');
      await waitForEveryone();
      if (process.env.RANK === '3') throw new Error('node one broke');
      await new Promise((r) => setTimeout(r, 60_000));
    `;
    const { result, events } = await runLaunch({ numProcesses: 2, marker, body, secret: SECRET, options: { numNodes: 2, usePort: port }, timeoutMs: 60_000 });
    expect(result.outcome).toBe('failed');
    expect(result.failures[0]).toMatchObject({ rank: 3, nodeRank: 1, exitCode: 1 });
    expect(result.failures[0].error).toMatchObject({ evalue: 'node one broke' });
    expect(result.failures).toHaveLength(1);
    const { describeFailure, buildErrorReport } = loadDist();
    expect(describeFailure(result.failures[0])).toBe('rank 3 on node 1 exited with code 1');
    expect(buildErrorReport(result, 4).evalue).toBe('rank 3 failed first (exit code 1): Error: node one broke');
    const last = new Map<number, string>();
    for (const e of events) if (e.type === 'state') last.set(e.worker.rank, e.worker.state);
    expect([...last.entries()].sort()).toEqual([[0, 'stopped'], [1, 'stopped'], [2, 'stopped'], [3, 'failed']]);
    expect((await withTimeout(agent.exited, 15_000, 'the agent')).code).toBe(1);
  }, 90_000);

  it('notebookLauncher from a script on node 0 gets the return values of every rank of both nodes, indexed by rank', async () => {
    const port = await freePort();
    const outFile = path.join(tmp.scratch('fn-multinode'), 'out.bin');
    // Both sides see the same scenario (node 1's workers re-run the script too).
    const env = { TSLAUNCH_SECRET: SECRET, FIXTURE_SCENARIO: 'multinode', FIXTURE_PORT: String(port), CUDA_VISIBLE_DEVICES: '' };
    const node0 = spawnNode([path.join(FIXTURES, 'fn-api.js')], { env: childEnv(tmp, marker, { ...env, FIXTURE_OUT: outFile }) });
    children.push(node0);
    const agent = spawnNode([CLI, 'agent', '--num_nodes', '2', '--node_rank', '1', '--master_addr', '127.0.0.1', '--use_port', String(port), '-n', '2', '--once'], {
      env: childEnv(tmp, marker, env),
    });
    children.push(agent);
    const exit = await withTimeout(node0.exited, 60_000, 'the script on node 0');
    expect(exit.code, node0.stderr()).toBe(0);
    expect(fs.existsSync(outFile), `no result\n${node0.stdout()}\n${node0.stderr()}`).toBe(true);
    const out = deserialize(fs.readFileSync(outFile)) as { ok: boolean; value: unknown[]; message?: string };
    expect(out.ok, out.message).toBe(true);
    expect(out.value).toHaveLength(4);
    out.value.forEach((v, rank) => {
      expect(v).toMatchObject({ rank, node: rank < 2 ? 0 : 1, world: 4, tag: 't' });
      const big = (v as { big: Map<number, Uint8Array> }).big;
      expect(big).toBeInstanceOf(Map);
      expect(Array.from(big.get(rank)!)).toEqual([rank]);
    });
    for (let r = 0; r < 4; r++) expect(node0.stdout()).toContain(`[rank${r}]: rank ${r} on node ${r < 2 ? 0 : 1}\n`);
    expect((await withTimeout(agent.exited, 15_000, 'the agent')).code).toBe(0);
  }, 90_000);

  it('with unequal processes per node (2 + 3), notebookLauncher resolves with all 5 return values, by rank', async () => {
    const port = await freePort();
    const outFile = path.join(tmp.scratch('fn-unequal'), 'out.bin');
    const env = { TSLAUNCH_SECRET: SECRET, FIXTURE_SCENARIO: 'multinode-unequal', FIXTURE_PORT: String(port), CUDA_VISIBLE_DEVICES: '' };
    const node0 = spawnNode([path.join(FIXTURES, 'fn-api.js')], { env: childEnv(tmp, marker, { ...env, FIXTURE_OUT: outFile }) });
    children.push(node0);
    const agent = spawnNode([CLI, 'agent', '--num_nodes', '2', '--node_rank', '1', '--master_addr', '127.0.0.1', '--use_port', String(port), '-n', '3', '--once'], {
      env: childEnv(tmp, marker, env),
    });
    children.push(agent);
    const exit = await withTimeout(node0.exited, 60_000, 'the script on node 0');
    expect(exit.code, node0.stderr()).toBe(0);
    const out = deserialize(fs.readFileSync(outFile)) as { ok: boolean; value: unknown[]; message?: string };
    expect(out.ok, out.message).toBe(true);
    expect(out.value).toEqual([
      { rank: 0, node: 0, localRank: 0, world: 5 },
      { rank: 1, node: 0, localRank: 1, world: 5 },
      { rank: 2, node: 1, localRank: 0, world: 5 },
      { rank: 3, node: 1, localRank: 1, world: 5 },
      { rank: 4, node: 1, localRank: 2, world: 5 },
    ]);
    expect((await withTimeout(agent.exited, 15_000, 'the agent')).code).toBe(0);
  }, 90_000);

  it('with unequal processes per node, the published world and the live view place every rank right (node, local rank, prefix)', async () => {
    const port = await freePort();
    const agent = startAgent(['--num_nodes', '2', '--node_rank', '1', '--master_addr', '127.0.0.1', '--use_port', String(port), '-n', '3', '--once']);
    const { LaunchView } = loadView();
    const shown: unknown[] = [];
    const options = { numNodes: 2, masterAddr: '127.0.0.1', usePort: port, logLinePrefixTemplate: '[${node_rank}/${local_rank}:${rank}] ' };
    const view = new LaunchView({ options: loadDist().optionsFromObject({ numProcesses: 2, ...options }), numProcesses: 2 }, (content: { data: Record<string, unknown> }) => VIEW_MIME in content.data && shown.push(content.data[VIEW_MIME]));
    view.open();
    const { result, events } = await runLaunch({
      numProcesses: 2, marker, secret: SECRET, options, timeoutMs: 60_000,
      body: `console.log('local ' + process.env.LOCAL_RANK + ' of ' + process.env.LOCAL_WORLD_SIZE);`,
      onEvent: (e) => view.onEvent(e),
    });
    expect(result).toMatchObject({ outcome: 'succeeded', worldSize: 5 });
    const placements = [[0, 0, 0], [1, 0, 1], [2, 1, 0], [3, 1, 1], [4, 1, 2]];
    const worlds = events.filter((e): e is Extract<LaunchEvent, { type: 'world' }> => e.type === 'world');
    expect(worlds).toHaveLength(1);
    expect(worlds[0].world.ranks).toEqual(placements.map(([rank, nodeRank, localRank]) => ({ rank, nodeRank, localRank, prefix: `[${nodeRank}/${localRank}:${rank}] ` })));
    expect(result.world?.ranks).toEqual(worlds[0].world.ranks);
    const model = shown[shown.length - 1] as { state: string; worldSize: number; ranks: { rank: number; node: number; localRank: number; prefix: string; state: string }[] };
    expect(model.state).toBe('succeeded');
    expect(model.worldSize).toBe(5);
    expect(model.ranks.map((r) => [r.rank, r.node, r.localRank, r.prefix, r.state])).toEqual(
      placements.map(([rank, node, local]) => [rank, node, local, `[${node}/${local}:${rank}] `, 'succeeded']),
    );
    for (const [rank, node, local] of placements) {
      expect(outputText(events, rank, 'stdout')).toBe(`[${node}/${local}:${rank}] local ${local} of ${node === 0 ? 2 : 3}\n`);
    }
    expect(await withTimeout(agent.exited, 15_000, 'the agent (--once)')).toEqual({ code: 0, signal: null });
  }, 90_000);

  it('a joined node that dies (SIGKILL) fails the launch after rdzv_conf timeout; its workers die with it (lifeline)', async () => {
    const port = await freePort();
    const agent = startAgent(['--num_nodes', '2', '--node_rank', '1', '--master_addr', '127.0.0.1', '--use_port', String(port), '-n', '1', '--once']);
    const remotePids: number[] = [];
    let killedAt = 0;
    const { result, events } = await runLaunch({
      numProcesses: 1, marker, secret: SECRET, options: { numNodes: 2, usePort: port, rdzvConf: 'timeout=2' }, timeoutMs: 60_000,
      body: `console.log('up'); await new Promise((r) => setTimeout(r, 60_000));`,
      onEvent: (e) => {
        if (e.type === 'started' && e.nodeRank === 1) remotePids.push(e.pid);
        if (e.type === 'state' && e.worker.rank === 1 && e.worker.state === 'running' && !killedAt) {
          agent.kill('SIGKILL');
          killedAt = performance.now();
        }
      },
    });
    const detectedIn = performance.now() - killedAt;
    expect(killedAt).toBeGreaterThan(0);
    expect(result.outcome).toBe('failed');
    expect(result.failures[0]).toMatchObject({ rank: 1, nodeRank: 1, error: { ename: 'NodeLost', evalue: 'node 1 stopped answering' } });
    expect(events.some((e) => e.type === 'notice' && /^node 1 \(.+\) stopped answering; treating its ranks as failed\.$/.test(e.text))).toBe(true);
    expect(detectedIn).toBeLessThan(2000 + 5000);
    expect(remotePids).toHaveLength(1);
    expect(await waitUntilGone(remotePids, 2000)).toEqual([]);
    // Node 0's launch folder is gone, and so is the dead agent's (its worker removes it).
    await agent.exited;
    await expect.poll(() => tmp.launchDirs(), { timeout: 2000, interval: 50 }).toEqual([]);
  }, 90_000);

  it('an agent without --once serves one launch after another until it is stopped', async () => {
    const port = await freePort();
    const agent = startAgent(['--num_nodes', '2', '--node_rank', '1', '--master_addr', '127.0.0.1', '--use_port', String(port), '-n', '1']);
    // The agent must not end between launches: its exit ends the wait with what it logged.
    const agentGone = agent.exited.then((x) => `the agent exited (code ${x.code}) while a launch waited for it:\n${agent.stderr()}`);
    for (const round of [1, 2]) {
      const { result, events } = await runLaunch({
        numProcesses: 1, marker, secret: SECRET, options: { numNodes: 2, usePort: port }, until: agentGone, timeoutMs: 30_000,
        body: `console.log('round ${round} rank ' + process.env.RANK);`,
      });
      expect(result.outcome).toBe('succeeded');
      expect(outputText(events, 0)).toBe(`[rank0]: round ${round} rank 0\n`);
      expect(outputText(events, 1)).toBe(`[rank1]: round ${round} rank 1\n`);
    }
    await agent.waitFor(/launch finished: succeeded[\s\S]*launch finished: succeeded/, 'stderr', 10_000);
    expect(agent.stderr().match(/joined as node 1 of 2/g)).toHaveLength(2);
    agent.kill('SIGTERM');
    expect(await withTimeout(agent.exited, 10_000, 'the stopped agent')).toEqual({ code: 130, signal: null });
  }, 120_000);
});

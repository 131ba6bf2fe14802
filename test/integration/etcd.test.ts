/**
 * The etcd rendezvous (--rdzv_backend etcd) against a real etcd (Debian's etcd-server), on loopback:
 * node 0 is a `Launch` of the built package in this process, the other node a `tslaunch agent`.
 * Checked: the world forms through etcd (node ranks in join order), a node whose agent dies is seen
 * through its lease and named, the job's keys are gone at the end, and etcd problems are clear errors.
 * (Two real hosts, in network namespaces: two-hosts.test.ts.)
 */
import * as net from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import type { LaunchEvent } from '../../launcher/contract';
import { makeTestCertificates, startEtcd, type EtcdTls, type RunningEtcd } from '../helpers/etcd';
import { freePort } from '../helpers/free-port';
import { waitUntilGone, type TempSnapshot } from '../helpers/leftovers';
import { CLI, PrivateTmp, childEnv, expectClean, killMarked, makeLaunch, outputText, randomId, runLaunch, sleep, spawnNode, withTimeout, type Child } from '../fixtures/support';

let tmp: PrivateTmp;
let etcd: RunningEtcd;
let marker: string;
let since: TempSnapshot;
let children: Child[] = [];

beforeAll(async () => {
  tmp = new PrivateTmp('etcd');
  etcd = await startEtcd();
}, 60_000);
afterAll(async () => {
  await etcd?.stop();
  tmp?.dispose();
});
beforeEach(() => {
  marker = randomId();
  since = tmp.snapshot();
  children = [];
});
afterEach(async () => {
  try {
    await expectClean(marker, since, 'the launch (both nodes)', 8000);
    // No job leaves keys behind (removed at its end, or with its leases).
    await expect.poll(() => etcd.keys('/tslaunch/'), { timeout: 15_000, interval: 200 }).toEqual([]);
  } finally {
    for (const c of children) c.kill('SIGKILL');
    await killMarked(marker);
  }
});

const SECRET = 'etcd-test-secret';

function startAgent(args: string[], extra: Record<string, string> = {}): Child {
  const child = spawnNode([CLI, 'agent', ...args], { env: childEnv(tmp, marker, { TSLAUNCH_SECRET: SECRET, ...extra }) });
  children.push(child);
  return child;
}

const BODY = `const { waitForEveryone } = require('tslaunch');
console.log('RANK=' + process.env.RANK + ' GROUP_RANK=' + process.env.GROUP_RANK + ' WORLD_SIZE=' + process.env.WORLD_SIZE);
await waitForEveryone();`;

describe('--rdzv_backend etcd', () => {
  it('two nodes form one world of 4 ranks through etcd (an agent given two endpoints, one dead); the job keys are removed at the end', async () => {
    const rdzvId = `job-${marker.slice(0, 8)}`;
    // Several endpoints, the first one dead: the client uses the one that answers. "Dead" is a port
    // held by this test that drops every connection: a merely free port could be taken meanwhile
    // by another suite's server, which would accept and then never answer (seen once in CI).
    const dead = net.createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => new Promise<void>((resolve) => dead.close(() => resolve())));
    const endpoints = `127.0.0.1:${(dead.address() as net.AddressInfo).port},${etcd.endpoint}`;
    const agent = startAgent(['--num_nodes', '2', '--rdzv_backend', 'etcd', '--rdzv_endpoint', endpoints, '--rdzv_id', rdzvId, '-n', '2', '--once']);
    await agent.waitFor(/registered with etcd/, 'stderr', 20_000);
    expect(await etcd.keys(`/tslaunch/${rdzvId}/nodes/`)).toHaveLength(1);
    const { result, events } = await runLaunch({
      numProcesses: 2, marker, body: BODY, secret: SECRET, timeoutMs: 60_000,
      options: { numNodes: 2, rdzvBackend: 'etcd', rdzvEndpoint: etcd.endpoint, rdzvId },
    });
    expect(result).toMatchObject({ outcome: 'succeeded', failures: [], worldSize: 4 });
    for (let r = 0; r < 4; r++) expect(outputText(events, r)).toBe(`[rank${r}]: RANK=${r} GROUP_RANK=${Math.floor(r / 2)} WORLD_SIZE=4\n`);
    const notices = events.filter((e) => e.type === 'notice').map((e) => (e as { text: string }).text);
    expect(notices[0]).toMatch(new RegExp(`^waiting for 1 more node\\(s\\) to join through etcd at ${etcd.endpoint} \\(rdzv_id ${rdzvId}\\); this node's control store is at 127\\.0\\.0\\.1:\\d+$`));
    expect((await withTimeout(agent.exited, 15_000, 'the agent (--once)')).code).toBe(0);
    expect(agent.stderr()).toContain('joined as node 1 of 2: ranks 2..3 of 4');
    expect(await etcd.keys(`/tslaunch/${rdzvId}/`)).toEqual([]);
  }, 90_000);

  it('node ranks follow the order the agents registered in etcd (3 nodes, etcd-v2 spelling)', async () => {
    const rdzvId = `order-${marker.slice(0, 8)}`;
    const flags = ['--num_nodes', '3', '--rdzv_backend', 'etcd-v2', '--rdzv_endpoint', etcd.endpoint, '--rdzv_id', rdzvId, '-n', '1', '--once'];
    const first = startAgent(flags);
    await first.waitFor(/registered with etcd/, 'stderr', 20_000);
    const second = startAgent(flags);
    await second.waitFor(/registered with etcd/, 'stderr', 20_000);
    const { result, events } = await runLaunch({
      numProcesses: 1, marker, secret: SECRET, timeoutMs: 60_000, body: `console.log('GROUP_RANK=' + process.env.GROUP_RANK)`,
      options: { numNodes: 3, rdzvBackend: 'etcd-v2', rdzvEndpoint: etcd.endpoint, rdzvId },
    });
    expect(result.outcome).toBe('succeeded');
    for (const r of [0, 1, 2]) expect(outputText(events, r)).toBe(`[rank${r}]: GROUP_RANK=${r}\n`);
    await withTimeout(Promise.all([first.exited, second.exited]), 15_000, 'the agents');
    expect(first.stderr()).toContain('joined as node 1 of 3');
    expect(second.stderr()).toContain('joined as node 2 of 3');
  }, 90_000);

  it('an agent that dies (SIGKILL) is seen through its lease: the launch fails naming node 1, well before rdzv timeout', async () => {
    const rdzvId = `dies-${marker.slice(0, 8)}`;
    const agent = startAgent(['--num_nodes', '2', '--rdzv_backend', 'etcd', '--rdzv_endpoint', etcd.endpoint, '--rdzv_id', rdzvId, '--rdzv_conf', 'lease_ttl=2', '-n', '1', '--once']);
    await agent.waitFor(/registered with etcd/, 'stderr', 20_000);
    const remotePids: number[] = [];
    let killedAt = 0;
    const { result, events } = await runLaunch({
      numProcesses: 1, marker, secret: SECRET, timeoutMs: 60_000,
      options: { numNodes: 2, rdzvBackend: 'etcd', rdzvEndpoint: etcd.endpoint, rdzvId, rdzvConf: 'lease_ttl=2,timeout=60' },
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
    expect(result.failures[0]).toMatchObject({ nodeRank: 1, error: { ename: 'NodeLost' } });
    expect(result.failures[0].error!.evalue).toMatch(/^node 1 \(.+\) left the etcd rendezvous \(its lease ended\)$/);
    expect(events.some((e) => e.type === 'notice' && /^node 1 \(.+\) left the etcd rendezvous/.test(e.text))).toBe(true);
    expect(detectedIn).toBeLessThan(2000 + 4000); // the lease TTL, not rdzv timeout (60 s)
    expect(await waitUntilGone(remotePids, 3000)).toEqual([]);
  }, 90_000);

  it('--num_nodes 1:3: the launch starts alone after last_call_timeout; two agents that join late grow the world at the next round', async () => {
    const rdzvId = `elastic-${marker.slice(0, 8)}`;
    const events: LaunchEvent[] = [];
    const launch = makeLaunch(
      {
        numProcesses: 1, marker, secret: SECRET,
        options: { numNodes: '1:3', rdzvBackend: 'etcd', rdzvEndpoint: etcd.endpoint, rdzvId, rdzvConf: 'last_call_timeout=1' },
        // Alone, it waits for company; in a world of 3 it reports and ends.
        body: `console.log('attempt world ' + process.env.GROUP_WORLD_SIZE + ' ' + process.env.WORLD_SIZE);
if (process.env.WORLD_SIZE !== '3') await new Promise((r) => setTimeout(r, 60_000));`,
      },
      events,
    );
    const run = launch.run();
    await expect.poll(() => outputText(events, 0), { timeout: 20_000, interval: 100 }).toContain('attempt world 1 1');
    const flags = ['--num_nodes', '1:3', '--rdzv_backend', 'etcd', '--rdzv_endpoint', etcd.endpoint, '--rdzv_id', rdzvId, '-n', '1', '--once'];
    const late = [startAgent(flags), startAgent(flags)];
    const result = await withTimeout(run, 60_000, 'the elastic launch');
    expect(result).toMatchObject({ outcome: 'succeeded', worldSize: 3, restarts: 0 });
    for (const r of [0, 1, 2]) expect(outputText(events, r)).toContain('attempt world 3 3');
    const reasons = events.filter((e) => e.type === 'restarting').map((e) => (e as { reason: string }).reason);
    expect(reasons.length).toBeGreaterThanOrEqual(1);
    expect(reasons[0]).toMatch(/^the world grows: node \d \(.+\) joined/);
    expect(events.some((e) => e.type === 'notice' && /^3 nodes joined, world size 3: /.test(e.text))).toBe(true);
    await withTimeout(Promise.all(late.map((a) => a.exited)), 15_000, 'the agents');
  }, 90_000);

  it('--max_restarts 1: a node that dies is named, the agent started again rejoins the next round, and the job completes', async () => {
    const rdzvId = `rejoin-${marker.slice(0, 8)}`;
    const flags = ['--num_nodes', '2', '--rdzv_backend', 'etcd', '--rdzv_endpoint', etcd.endpoint, '--rdzv_id', rdzvId, '--rdzv_conf', 'lease_ttl=2', '-n', '1', '--once'];
    const first = startAgent(flags);
    await first.waitFor(/registered with etcd/, 'stderr', 20_000);
    const events: LaunchEvent[] = [];
    let second: Child | undefined;
    const result = await runLaunch({
      numProcesses: 1, marker, secret: SECRET, timeoutMs: 60_000,
      options: { numNodes: 2, maxRestarts: 1, rdzvBackend: 'etcd', rdzvEndpoint: etcd.endpoint, rdzvId, rdzvConf: 'lease_ttl=2,timeout=60' },
      body: `console.log('restart ' + process.env.TORCHELASTIC_RESTART_COUNT);
if (process.env.TORCHELASTIC_RESTART_COUNT === '0') await new Promise((r) => setTimeout(r, 60_000));`,
      onEvent: (e) => {
        events.push(e);
        if (e.type === 'state' && e.worker.rank === 1 && e.worker.state === 'running' && e.worker.restartCount === 0 && !second) {
          first.kill('SIGKILL');
          second = startAgent(flags); // the node comes back
        }
      },
    });
    expect(result.result).toMatchObject({ outcome: 'succeeded', restarts: 1, worldSize: 2 });
    const reasons = events.filter((e) => e.type === 'restarting').map((e) => (e as { reason: string }).reason);
    expect(reasons).toHaveLength(1);
    expect(reasons[0], reasons[0]).toMatch(/node 1 \(.+\) left the etcd rendezvous/);
    const notices = events.filter((e) => e.type === 'notice').map((e) => (e as { text: string }).text);
    expect(notices.some((t) => /^node 1 \(.+\) is out of the world\.$/.test(t))).toBe(true);
    expect(notices.some((t) => /^2 nodes joined, world size 2: node 0 .*node 1 \(.+, 1 process, joined now\)$/.test(t)), notices.join('\n')).toBe(true);
    for (const r of [0, 1]) expect(outputText(events, r)).toContain('restart 1');
    await withTimeout(second!.exited, 15_000, 'the agent that came back');
  }, 90_000);

  it('etcd unreachable: the launch fails within the timeout, naming the endpoint and the step; an agent exits saying the same', async () => {
    const dead = `127.0.0.1:${await freePort()}`;
    const started = performance.now();
    const run = runLaunch({
      numProcesses: 1, marker, secret: SECRET, timeoutMs: 30_000, body: '1',
      options: { numNodes: 2, rdzvBackend: 'etcd', rdzvEndpoint: dead, rdzvConf: 'timeout=2' },
    });
    const err = (await run.then(() => null, (e: Error) => e))!;
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toMatch(new RegExp(`^etcd at ${dead} failed to (grant this node's lease|publish the store's address): `));
    expect(err.message).toContain('Check --rdzv_endpoint');
    expect(performance.now() - started).toBeLessThan(10_000);
    const agent = startAgent(['--num_nodes', '2', '--rdzv_backend', 'etcd', '--rdzv_endpoint', dead, '--rdzv_conf', 'timeout=2', '-n', '1', '--once']);
    const exit = await withTimeout(agent.exited, 15_000, 'the agent');
    expect(exit.code).not.toBe(0);
    expect(agent.stderr()).toContain(`etcd at ${dead} failed to`);
  }, 60_000);

  it('a second job with the same rdzv_id is refused while the first runs; the first is unaffected', async () => {
    const rdzvId = `dup-${marker.slice(0, 8)}`;
    const events: LaunchEvent[] = [];
    const options = { numNodes: 2, rdzvBackend: 'etcd', rdzvEndpoint: etcd.endpoint, rdzvId, rdzvConf: 'join_timeout=30' };
    const first = makeLaunch({ numProcesses: 1, marker, secret: SECRET, body: '1', options }, events);
    const firstRun = first.run();
    await expect.poll(() => etcd.keys(`/tslaunch/${rdzvId}/store`), { timeout: 10_000, interval: 100 }).toHaveLength(1);
    const second = await runLaunch({ numProcesses: 1, marker, secret: SECRET, body: '1', options, timeoutMs: 20_000 }).then(() => null, (e: Error) => e);
    expect(second?.message).toMatch(`another launch already runs with rdzv_id "${rdzvId}"`);
    const agent = startAgent(['--num_nodes', '2', '--rdzv_backend', 'etcd', '--rdzv_endpoint', etcd.endpoint, '--rdzv_id', rdzvId, '-n', '1', '--once']);
    expect((await withTimeout(firstRun, 60_000, 'the first job')).outcome).toBe('succeeded');
    await withTimeout(agent.exited, 15_000, 'the agent');
    await sleep(10);
  }, 90_000);
});

describe('--rdzv_backend etcd with TLS and a user', () => {
  let secure: RunningEtcd;
  let certs: EtcdTls;
  const PASSWORD = 'etcd-pw-never-printed';
  beforeAll(async () => {
    certs = makeTestCertificates(tmp.dir);
    secure = await startEtcd({ tls: certs });
    await secure.enableAuth(PASSWORD);
  }, 60_000);
  afterAll(async () => {
    await secure?.stop();
  });

  it('joins over TLS (rdzv_conf etcd_cacert) as a user whose password comes from TSLAUNCH_ETCD_PASSWORD; a wrong password is a clear error that never shows it', async () => {
    const rdzvId = `secure-${marker.slice(0, 8)}`;
    const conf = `etcd_cacert=${certs.ca},etcd_user=root`;
    const agent = startAgent(['--num_nodes', '2', '--rdzv_backend', 'etcd', '--rdzv_endpoint', secure.endpoint, '--rdzv_id', rdzvId, '--rdzv_conf', conf, '-n', '1', '--once'], { TSLAUNCH_ETCD_PASSWORD: PASSWORD });
    await agent.waitFor(/registered with etcd/, 'stderr', 20_000);
    process.env.TSLAUNCH_ETCD_PASSWORD = PASSWORD;
    try {
      const { result, events } = await runLaunch({
        numProcesses: 1, marker, secret: SECRET, timeoutMs: 60_000, body: `console.log('over tls ' + process.env.RANK)`,
        options: { numNodes: 2, rdzvBackend: 'etcd', rdzvEndpoint: secure.endpoint, rdzvId, rdzvConf: conf },
      });
      expect(result.outcome).toBe('succeeded');
      for (const r of [0, 1]) expect(outputText(events, r)).toBe(`[rank${r}]: over tls ${r}\n`);
      expect(JSON.stringify(events)).not.toContain(PASSWORD);
      const root = secure.client({ username: 'root', password: PASSWORD });
      try {
        expect(await root.getAll().prefix('/tslaunch/').keys()).toEqual([]);
      } finally {
        root.close();
      }
      process.env.TSLAUNCH_ETCD_PASSWORD = 'wrong-password';
      const err = await runLaunch({ numProcesses: 1, marker, secret: SECRET, body: '1', timeoutMs: 30_000, options: { numNodes: 2, rdzvBackend: 'etcd', rdzvEndpoint: secure.endpoint, rdzvConf: conf } }).then(() => null, (e: Error) => e);
      expect(err?.message).toMatch(new RegExp(`^etcd at ${secure.endpoint} failed to `));
      expect(err?.message).toContain('Check the user (--rdzv_conf etcd_user) and its password (TSLAUNCH_ETCD_PASSWORD)');
      expect(err?.message).not.toContain('wrong-password');
      delete process.env.TSLAUNCH_ETCD_PASSWORD;
      const missing = await runLaunch({ numProcesses: 1, marker, secret: SECRET, body: '1', timeoutMs: 30_000, options: { numNodes: 2, rdzvBackend: 'etcd', rdzvEndpoint: secure.endpoint, rdzvConf: conf } }).then(() => null, (e: Error) => e);
      expect(missing?.message).toBe('--rdzv_conf etcd_user=root needs the password in TSLAUNCH_ETCD_PASSWORD (in this process\'s environment; never on the command line).');
      // Without the CA, TLS fails: said as such, naming the TLS settings.
      process.env.TSLAUNCH_ETCD_PASSWORD = PASSWORD;
      const noCa = await runLaunch({ numProcesses: 1, marker, secret: SECRET, body: '1', timeoutMs: 30_000, options: { numNodes: 2, rdzvBackend: 'etcd', rdzvEndpoint: secure.endpoint, rdzvConf: 'etcd_user=root,timeout=2' } }).then(() => null, (e: Error) => e);
      expect(noCa?.message).toMatch(/etcd_cacert/);
    } finally {
      delete process.env.TSLAUNCH_ETCD_PASSWORD;
    }
    await withTimeout(agent.exited, 15_000, 'the agent');
  }, 90_000);
});


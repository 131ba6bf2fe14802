/**
 * Two real hosts: two network namespaces joined by a veth pair (192.0.2.1 and 192.0.2.2, a
 * documentation range, only inside namespaces this test makes and removes). Node 0 (`tslaunch run`)
 * and etcd run in host A, `tslaunch agent` in host B; every byte between the nodes crosses the veth.
 * Needs root (`ip netns`), as `.ci/run` has; without it the suite fails and says so.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startEtcd, type RunningEtcd } from '../helpers/etcd';
import { CLI, PrivateTmp, childEnv, randomId, withTimeout } from '../fixtures/support';

const A = { ns: `tslA-${process.pid}`, ip: '192.0.2.1', dev: `tva${process.pid % 100000}` };
const B = { ns: `tslB-${process.pid}`, ip: '192.0.2.2', dev: `tvb${process.pid % 100000}` };
const SECRET = 'two-hosts-secret';
let tmp: PrivateTmp;
let etcd: RunningEtcd | undefined;
let procs: ChildProcess[] = [];

function ip(...args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')} failed (${r.status}): ${r.stderr || r.error?.message}. These tests need root and iproute2 (scripts/system-deps.sh).`);
}

/** Every process still running in a namespace (killed before the namespace goes). */
function pidsIn(ns: string): number[] {
  const r = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' });
  return (r.stdout ?? '').split(/\s+/).filter(Boolean).map(Number);
}

interface Run {
  proc: ChildProcess;
  out(): string;
  err(): string;
  exited: Promise<number | null>;
  waitFor(re: RegExp, ms: number): Promise<void>;
}

function inHost(host: typeof A, args: string[], marker: string): Run {
  const proc = spawn('ip', ['netns', 'exec', host.ns, process.execPath, CLI, ...args], { env: childEnv(tmp, marker, { TSLAUNCH_SECRET: SECRET }) as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(proc);
  let out = '';
  let err = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((resolve) => proc.once('close', (code) => resolve(code)));
  return {
    proc, exited, out: () => out, err: () => err,
    waitFor: async (re, ms) => {
      for (const deadline = Date.now() + ms; !re.test(err + out); ) {
        if (Date.now() > deadline) throw new Error(`waited ${ms} ms for ${re}; stderr: ${err}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

function script(name: string, body: string): string {
  const file = path.join(tmp.dir, name);
  fs.writeFileSync(file, body);
  return file;
}

const WORLD = `const { waitForEveryone, allReduce } = require(${JSON.stringify(path.resolve(__dirname, '../../dist/launcher/index.js'))});
(async () => {
  const sum = await allReduce(new Float64Array([Number(process.env.RANK) + 1]));
  await waitForEveryone();
  console.log('rank ' + process.env.RANK + ' of ' + process.env.WORLD_SIZE + ' on node ' + process.env.GROUP_RANK + ' sum ' + sum[0]);
})();`;

beforeAll(() => {
  tmp = new PrivateTmp('two-hosts');
  ip('netns', 'add', A.ns);
  ip('netns', 'add', B.ns);
  ip('link', 'add', A.dev, 'netns', A.ns, 'type', 'veth', 'peer', 'name', B.dev, 'netns', B.ns);
  for (const h of [A, B]) {
    ip('-n', h.ns, 'addr', 'add', `${h.ip}/24`, 'dev', h.dev);
    ip('-n', h.ns, 'link', 'set', h.dev, 'up');
    ip('-n', h.ns, 'link', 'set', 'lo', 'up');
  }
}, 30_000);

afterEach(async () => {
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  procs = [];
});

afterAll(async () => {
  await etcd?.stop();
  for (const h of [A, B]) {
    for (const pid of pidsIn(h.ns)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    spawnSync('ip', ['netns', 'del', h.ns]);
  }
  tmp?.dispose();
}, 30_000);

describe('two hosts (network namespaces joined by a veth pair)', () => {
  it('--rdzv_backend etcd: 2 + 2 ranks across the hosts; all-reduce and barrier cross the veth; no keys left', async () => {
    etcd = await startEtcd({ host: A.ip, netns: A.ns, port: 2379, peerPort: 2380 });
    const marker = randomId();
    const net = ['--num_nodes', '2', '-n', '2', '--rdzv_backend', 'etcd', '--rdzv_endpoint', `${A.ip}:2379`, '--rdzv_id', 'two-hosts'];
    const agent = inHost(B, ['agent', ...net, '--once'], marker);
    await agent.waitFor(/registered with etcd/, 20_000);
    const node0 = inHost(A, ['run', ...net, script('world.js', WORLD)], marker);
    expect(await withTimeout(node0.exited, 60_000, 'tslaunch run in host A'), node0.err()).toBe(0);
    for (let r = 0; r < 4; r++) expect(node0.out()).toContain(`[rank${r}]: rank ${r} of 4 on node ${r < 2 ? 0 : 1} sum 10\n`);
    expect(node0.err()).toContain(`this node's control store is at ${A.ip}:`);
    expect(await withTimeout(agent.exited, 15_000, 'the agent in host B')).toBe(0);
    expect(agent.err()).toContain('joined as node 1 of 2: ranks 2..3 of 4');
    const left = await new Promise<string>((resolve) => {
      const get = `require(${JSON.stringify(require.resolve('etcd3'))}); const { Etcd3 } = require(${JSON.stringify(require.resolve('etcd3'))}); const c = new Etcd3({ hosts: "http://${A.ip}:2379" }); c.getAll().prefix("/tslaunch/").keys().then((k) => { console.log(JSON.stringify(k)); c.close(); });`;
      const p = spawn('ip', ['netns', 'exec', A.ns, process.execPath, '-e', get], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      p.stdout!.on('data', (d) => (out += d));
      p.once('close', () => resolve(out.trim()));
    });
    expect(left).toBe('[]');
  }, 90_000);

  it('--rdzv_backend etcd: killing host B mid-run names node 1 in the error, within the lease TTL', async () => {
    const marker = randomId();
    const net = ['--num_nodes', '2', '-n', '1', '--rdzv_backend', 'etcd', '--rdzv_endpoint', `${A.ip}:2379`, '--rdzv_id', 'two-hosts-kill', '--rdzv_conf', 'lease_ttl=2,timeout=60'];
    const agent = inHost(B, ['agent', ...net, '--once'], marker);
    await agent.waitFor(/registered with etcd/, 20_000);
    const node0 = inHost(A, ['run', ...net, script('up.js', `console.log('up ' + process.env.RANK); setTimeout(() => {}, 60_000);`)], marker);
    await node0.waitFor(/\[rank1\]: up 1/, 30_000);
    const killedAt = Date.now();
    for (const pid of pidsIn(B.ns)) process.kill(pid, 'SIGKILL'); // the whole host goes
    expect(await withTimeout(node0.exited, 30_000, 'tslaunch run in host A')).toBe(1);
    expect(Date.now() - killedAt).toBeLessThan(2000 + 5000);
    expect(node0.err()).toMatch(/node 1 \(.+\) left the etcd rendezvous/);
  }, 90_000);

  it('--rdzv_backend etcd --max_restarts 1: host B dies, its agent is started again, rejoins the next round, and the job completes', async () => {
    const marker = randomId();
    const net = ['--num_nodes', '2', '-n', '1', '--rdzv_backend', 'etcd', '--rdzv_endpoint', `${A.ip}:2379`, '--rdzv_id', 'two-hosts-rejoin', '--rdzv_conf', 'lease_ttl=2,timeout=60'];
    const agent = inHost(B, ['agent', ...net, '--once'], marker);
    await agent.waitFor(/registered with etcd/, 20_000);
    const body = `console.log('restart ' + process.env.TORCHELASTIC_RESTART_COUNT + ' node ' + process.env.GROUP_RANK);
if (process.env.TORCHELASTIC_RESTART_COUNT === '0') setTimeout(() => {}, 60_000);`;
    const node0 = inHost(A, ['run', ...net, '--max_restarts', '1', script('restartable.js', body)], marker);
    await node0.waitFor(/\[rank1\]: restart 0 node 1/, 30_000);
    for (const pid of pidsIn(B.ns)) process.kill(pid, 'SIGKILL');
    await node0.waitFor(/left the etcd rendezvous/, 10_000);
    const again = inHost(B, ['agent', ...net, '--once'], marker);
    expect(await withTimeout(node0.exited, 60_000, 'tslaunch run in host A'), node0.err()).toBe(0);
    expect(node0.out()).toContain('[rank0]: restart 1 node 0');
    expect(node0.out()).toContain('[rank1]: restart 1 node 1');
    expect(node0.err()).toMatch(/node 1 \(.+\) left the etcd rendezvous/);
    expect(node0.err()).toMatch(/joined now/);
    expect(await withTimeout(again.exited, 15_000, 'the agent started again')).toBe(0);
  }, 90_000);

  for (const backend of ['c10d', 'static'] as const) {
    it(`--rdzv_backend ${backend} across the hosts: 2 + 2 ranks`, async () => {
      const marker = randomId();
      const where = backend === 'c10d' ? ['--rdzv_backend', 'c10d', '--rdzv_endpoint', `${A.ip}:29400`] : ['--master_addr', A.ip, '--use_port', '29500'];
      const net = ['--num_nodes', '2', '-n', '2', ...where];
      const node0 = inHost(A, ['run', ...net, script('world.js', WORLD)], marker);
      await node0.waitFor(/waiting for 1 more node/, 20_000);
      const agent = inHost(B, ['agent', ...net, ...(backend === 'static' ? ['--node_rank', '1'] : []), '--once'], marker);
      expect(await withTimeout(node0.exited, 60_000, 'tslaunch run in host A'), node0.err()).toBe(0);
      for (let r = 0; r < 4; r++) expect(node0.out()).toContain(`[rank${r}]: rank ${r} of 4 on node ${r < 2 ? 0 : 1} sum 10\n`);
      expect(await withTimeout(agent.exited, 15_000, 'the agent in host B')).toBe(0);
    }, 90_000);
  }
});

/**
 * The node <-> node channel under attack (issue 11, items 1-3), with real sockets on loopback:
 * - a peer without the secret cannot complete the CURVE handshake, and floods from it (or from one
 *   that learned the store's public key but not the secret) get no reply and do not grow node 0;
 * - a join recorded in one launch and replayed into the next is refused and counted;
 * - a secret written into a replayed cell is refused before anything is sent.
 * Node 0 is `tslaunch run --num_nodes 2` (a process of its own, so its memory can be read), or the
 * store of the built package in this process where the test needs to look inside it.
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { curveKeyPair, Dealer } from 'zeromq';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port';
import type { TempSnapshot } from '../helpers/leftovers';
import { CLI, REPO_ROOT, PrivateTmp, childEnv, expectClean, killMarked, loadDist, randomId, sleep, spawnNode, withTimeout, type Child } from '../fixtures/support';

type Contract = typeof import('../../launcher/contract');
type Rendezvous = typeof import('../../launcher/rendezvous');
const dist = createRequire(path.join(REPO_ROOT, 'package.json'));
const contract = (): Contract => dist('./dist/launcher/contract/index.js');
const rendezvous = (): Rendezvous => dist('./dist/launcher/rendezvous/index.js');

const SECRET = 'node-security-test-secret';
let tmp: PrivateTmp;
let marker: string;
let since: TempSnapshot;
let children: Child[] = [];
let sockets: Dealer[] = [];

beforeAll(() => {
  tmp = new PrivateTmp('node-security');
});
afterAll(() => tmp?.dispose());
beforeEach(() => {
  marker = randomId();
  since = tmp.snapshot();
  children = [];
  sockets = [];
});
afterEach(async () => {
  for (const s of sockets) s.close();
  try {
    await expectClean(marker, since, 'the launch', 8000);
  } finally {
    for (const c of children) c.kill('SIGKILL');
    await killMarked(marker);
  }
});

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]);
}

function dealer(options: ConstructorParameters<typeof Dealer>[0] = {}): Dealer {
  const socket = new Dealer({ linger: 0, ...options });
  sockets.push(socket);
  return socket;
}

/** A Dealer that completed CURVE with the store's key (as a node with the secret would). */
function curveDealer(secret: string): Dealer {
  const mine = curveKeyPair();
  const server = contract().curveKeysFromSecret(Buffer.from(secret), rendezvous().STORE_CURVE_PURPOSE).publicKey;
  return dealer({ curveServerKey: server, curvePublicKey: mine.publicKey, curveSecretKey: mine.secretKey });
}

/** Everything the socket receives within `ms`. */
async function receiveFor(socket: Dealer, ms: number): Promise<Buffer[][]> {
  const got: Buffer[][] = [];
  const deadline = Date.now() + ms;
  socket.receiveTimeout = 50;
  while (Date.now() < deadline) {
    try {
      got.push(await socket.receive());
    } catch {
      // timeout: look again until the deadline
    }
  }
  return got;
}

describe('the rendezvous store under attack', () => {
  it('an unauthenticated flood (plain ZeroMQ, or CURVE with a leaked public key but no secret) gets no reply and does not grow node 0', async () => {
    const port = await freePort();
    fs.writeFileSync(path.join(tmp.dir, 'job.js'), `console.log('rank ' + process.env.RANK + ' ran');\n`);
    const env = childEnv(tmp, marker, { TSLAUNCH_SECRET: SECRET });
    const node0 = spawnNode([CLI, 'run', '--num_nodes', '2', '--use_port', String(port), '-n', '1', 'job.js'], { env, cwd: tmp.dir });
    children.push(node0);
    for (const deadline = Date.now() + 20_000; !node0.stderr().includes('waiting for'); ) {
      if (Date.now() > deadline) throw new Error(`node 0 never waited for nodes:\n${node0.stderr()}`);
      await sleep(50);
    }
    await sleep(300);
    const before = rssKiB(node0.proc.pid!);
    const junk = Buffer.alloc(1024, 0x41);

    // The plain socket's handshake is refused by the CURVE server, so it keeps reconnecting and has
    // no pipe between tries: its sends may find nowhere to queue (EAGAIN). A flood does not wait for
    // them (non-blocking sends); the count shows some were still sent.
    const plain = dealer({ sendHighWaterMark: 0, sendTimeout: 0 });
    plain.connect(`tcp://127.0.0.1:${port}`);
    const leaked = curveDealer(SECRET); // knows the store's public key, not the secret: cannot sign
    leaked.connect(`tcp://127.0.0.1:${port}`);
    let plainSent = 0;
    for (let i = 0; i < 1500; i++) {
      plainSent += await plain.send([junk]).then(() => 1, () => 0);
      await leaked.send([Buffer.from(JSON.stringify({ type: 'join', rdzvId: 'none', nodeRank: 1, numProcesses: 1, host: 'x' })), junk]);
    }
    expect(plainSent, 'the plain flood never found a connection to queue on').toBeGreaterThan(0);
    const replies = await receiveFor(leaked, 1500);
    expect(replies, 'the store answered unsigned traffic').toHaveLength(0);
    const grownKiB = rssKiB(node0.proc.pid!) - before;
    expect(grownKiB, `node 0 grew by ${grownKiB} KiB after ~3 MB of unsigned messages`).toBeLessThan(40 * 1024);

    // The launch is unharmed: a node with the secret joins and the job runs.
    const agent = spawnNode([CLI, 'agent', '--num_nodes', '2', '--node_rank', '1', '--master_addr', '127.0.0.1', '--use_port', String(port), '-n', '1', '--once'], { env });
    children.push(agent);
    const exit = await withTimeout(node0.exited, 60_000, 'node 0');
    expect(exit.code, node0.stderr()).toBe(0);
    expect(node0.stdout()).toContain('[rank1]: rank 1 ran');
    await withTimeout(agent.exited, 15_000, 'the agent');
  }, 120_000);

  it('a join recorded in one launch and replayed into the next (same rdzv_id) is refused and counted; the real node still joins', async () => {
    const api = loadDist();
    const { RendezvousStore } = rendezvous();
    const { SealedLink } = contract();
    const port = await freePort();
    const options = api.optionsFromObject({ numProcesses: 1, numNodes: 2, usePort: port, rdzvId: 'job-7' });
    const secret = Buffer.from(SECRET);
    const hooks = { onNodeMessage: () => {} };

    // A node joins the first launch the honest way; everything it sends is recorded.
    const first = new RendezvousStore(secret, options, hooks);
    await first.bind('127.0.0.1', port, '--use_port');
    const recorded: Buffer[][] = [];
    const node = curveDealer(SECRET);
    node.connect(`tcp://127.0.0.1:${port}`);
    const link = new SealedLink(secret, 'node-recorded');
    const hello = link.seal({ type: 'hello' });
    recorded.push(hello);
    await node.send(hello);
    const [challengeFrames] = await receiveFor(node, 1000);
    const challenge = link.open(challengeFrames, (s, sender) => s === '' && sender === 'store')!.message as { type: string; nonce: string };
    expect(challenge.type).toBe('challenge');
    const join = link.seal({ type: 'join', rdzvId: 'job-7', nodeRank: 1, numProcesses: 1, host: 'honest' }, challenge.nonce);
    recorded.push(join);
    await node.send(join);
    const joined = await withTimeout(first.gather(5000, () => false), 6000, 'the first join');
    expect(joined.map((n) => n.host)).toEqual(['honest']);
    first.close();
    node.close();
    await sleep(200);

    // The next launch with the same rdzv_id: the recording is replayed from another connection.
    const second = new RendezvousStore(secret, options, hooks);
    await second.bind('127.0.0.1', port, '--use_port');
    try {
      const attacker = curveDealer(SECRET);
      attacker.connect(`tcp://127.0.0.1:${port}`);
      await attacker.send(recorded[1]); // the join, under the first launch's nonce
      // The recorded hello earns at most a fresh challenge, of no use without the secret to sign a join
      // under it; the join that follows still carries the old nonce.
      await attacker.send(recorded[0]);
      await attacker.send(recorded[1]);
      const answers = await receiveFor(attacker, 800);
      const reader = new SealedLink(secret, 'eavesdropper');
      expect(answers.map((f) => (reader.open(f, () => true)?.message as { type: string } | undefined)?.type)).toEqual(['challenge']);
      expect(second.nodes.size).toBe(0);
      expect(second.replayed).toBe(2);

      // The real node (fresh hello, fresh nonce) is not locked out.
      const honest = curveDealer(SECRET);
      honest.connect(`tcp://127.0.0.1:${port}`);
      const again = new SealedLink(secret, 'node-honest');
      await honest.send(again.seal({ type: 'hello' }));
      const [c2] = await receiveFor(honest, 1000);
      const nonce = (again.open(c2, (s, sender) => s === '' && sender === 'store')!.message as { nonce: string }).nonce;
      expect(nonce).not.toBe(challenge.nonce);
      await honest.send(again.seal({ type: 'join', rdzvId: 'job-7', nodeRank: 1, numProcesses: 1, host: 'honest-again' }, nonce));
      const nodes = await withTimeout(second.gather(5000, () => false), 6000, 'the second join');
      expect(nodes.map((n) => n.host)).toEqual(['honest-again']);
    } finally {
      second.close();
    }
  }, 60_000);

  it('refuses to ship a secret written into a cell, naming the cell and where the secret goes instead', async () => {
    const api = loadDist();
    const port = await freePort();
    const launch = new api.Launch(
      {
        options: api.optionsFromObject({ numProcesses: 1, numNodes: 2, usePort: port }),
        numProcesses: 1,
        payload: {
          cwd: REPO_ROOT,
          replay: [{ executionCount: 3, js: `process.env.TSLAUNCH_SECRET = "${SECRET}";`, async: false, jsLineToCellLine: [1] }],
          body: { executionCount: 4, js: `console.log(1)`, async: false, jsLineToCellLine: [1] },
        },
        env: { MARKER_FOR_CLEANUP: marker },
        secret: SECRET,
      },
      () => {},
    );
    const refused = await withTimeout(launch.run().then(() => null, (err: Error) => err), 20_000, 'the refused launch');
    expect(refused?.message).toMatch(/^cell \[3\] contains the shared secret/);
    expect(refused?.message).toContain('TSLAUNCH_SECRET_FILE');
    expect(refused?.message).toContain('//%tslaunch:no-replay');
  }, 30_000);
});

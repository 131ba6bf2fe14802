/**
 * A real etcd for tests (Debian's `etcd-server`): started on a temporary data dir and free ports
 * (optionally inside a network namespace), stopped by its PID, its data dir removed (etcd
 * preallocates ~120 MB there). Nothing of it outlives `stop()`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Etcd3 } from 'etcd3';
import { freePort } from './free-port';

export interface RunningEtcd {
  /** host:port for --rdzv_endpoint */
  endpoint: string;
  pid: number;
  client(auth?: { username: string; password: string }): Etcd3;
  /** Turns on etcd's authentication with a root user of this password. */
  enableAuth(rootPassword: string): Promise<void>;
  /** Every key under a prefix (to check that a job left none). */
  keys(prefix: string): Promise<string[]>;
  stop(): Promise<void>;
}

export const ETCD_BIN = '/usr/bin/etcd';

export interface EtcdTls {
  /** PEM files: the CA that signed the server's certificate, the certificate (for 127.0.0.1) and its key. */
  ca: string;
  cert: string;
  key: string;
}

/** A throwaway CA and a server certificate for 127.0.0.1, made with openssl in `dir`. */
export function makeTestCertificates(dir: string): EtcdTls {
  const run = (args: string[]) => {
    const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
  };
  run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=tslaunch test CA']);
  run(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
  fs.writeFileSync(path.join(dir, 'san.cnf'), 'subjectAltName=IP:127.0.0.1\n');
  run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '1', '-extfile', 'san.cnf']);
  return { ca: path.join(dir, 'ca.pem'), cert: path.join(dir, 'server.pem'), key: path.join(dir, 'server.key') };
}

export async function startEtcd(opts: { host?: string; netns?: string; port?: number; peerPort?: number; tls?: EtcdTls } = {}): Promise<RunningEtcd> {
  if (!fs.existsSync(ETCD_BIN)) throw new Error(`${ETCD_BIN} is missing: install Debian's etcd-server (scripts/system-deps.sh does)`);
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? (await freePort());
  const peerPort = opts.peerPort ?? (await freePort());
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsl-etcd-'));
  const scheme = opts.tls ? 'https' : 'http';
  const args = [
    '--name', 'test', '--data-dir', dataDir,
    '--listen-client-urls', `${scheme}://${host}:${port}`, '--advertise-client-urls', `${scheme}://${host}:${port}`,
    ...(opts.tls ? ['--cert-file', opts.tls.cert, '--key-file', opts.tls.key] : []),
    '--listen-peer-urls', `http://${host}:${peerPort}`, '--initial-advertise-peer-urls', `http://${host}:${peerPort}`,
    '--initial-cluster', `test=http://${host}:${peerPort}`, '--log-level', 'error',
  ];
  const proc: ChildProcess = opts.netns ? spawn('ip', ['netns', 'exec', opts.netns, ETCD_BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] }) : spawn(ETCD_BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const endpoint = `${host}:${port}`;
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
  };
  const client = (auth?: { username: string; password: string }) =>
    new Etcd3({ hosts: `${scheme}://${endpoint}`, dialTimeout: 2000, ...(opts.tls ? { credentials: { rootCertificate: fs.readFileSync(opts.tls.ca) } } : {}), ...(auth ? { auth } : {}) });
  const probe = opts.netns ? null : client();
  try {
    for (const deadline = Date.now() + 20_000; ; ) {
      if (proc.exitCode !== null) throw new Error(`etcd exited at start (${proc.exitCode}): ${stderr}`);
      try {
        if (probe) await probe.get('probe').string();
        else await new Promise<void>((resolve, reject) => {
          // Inside a namespace this process cannot connect: ask etcd's health from within.
          const get = `require("http").get("http://${endpoint}/health", (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on("error", () => process.exit(1))`;
          const c = spawn('ip', ['netns', 'exec', opts.netns!, process.execPath, '-e', get], { stdio: 'ignore' });
          c.once('exit', (code) => (code === 0 ? resolve() : reject(new Error('not yet'))));
        });
        break;
      } catch {
        if (Date.now() > deadline) throw new Error(`etcd did not answer within 20 s: ${stderr}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } catch (err) {
    probe?.close();
    await stop();
    throw err;
  }
  probe?.close();
  return {
    endpoint,
    pid: proc.pid!,
    client,
    enableAuth: async (rootPassword) => {
      const c = client();
      try {
        await c.role('root').create().catch(() => undefined);
        await c.user('root').create(rootPassword);
        await c.user('root').addRole('root');
        await c.auth.authEnable();
      } finally {
        c.close();
      }
    },
    keys: async (prefix) => {
      const c = client();
      try {
        return await c.getAll().prefix(prefix).keys();
      } finally {
        c.close();
      }
    },
    stop,
  };
}

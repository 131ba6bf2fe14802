// The etcd rendezvous (`--rdzv_backend etcd`, torchrun's `etcd`/`etcd-v2`): the job's membership
// lives in an etcd v3 cluster instead of in a store node 0 hosts at a fixed address. Keys, all under
// /tslaunch/<rdzv_id>/ (the job's namespace):
//   store          the launching node's control endpoint {host, port, launchId} (where the session
//                  and the ranks' output travel, CURVE-encrypted and sealed with the shared secret as
//                  for c10d: etcd only says where it is, and a forged one fails the handshake);
//   nodes/<id>     one key per node that joined; the order of their creation is the node ranks'.
// Every key is held by its node's lease, kept alive while the node runs: a node that dies frees its
// key within the lease TTL, which the launching node sees as that node failing. The launching
// node deletes the whole prefix when the job ends; the others revoke their leases.
import { Etcd3, type Lease, type Watcher } from "etcd3";
import { readFileSync } from "fs";
import { RendezvousError, type LaunchOptions } from "../contract";

export const DEFAULT_ETCD_PORT = 2379;
/** The environment variable that holds etcd's password (never a flag: flags are shown and sent to every node). */
export const ETCD_PASSWORD_ENV = "TSLAUNCH_ETCD_PASSWORD";
/** Seconds a dead node keeps its key (rdzv_conf lease_ttl). */
const DEFAULT_LEASE_TTL_S = 10;
/** How long one etcd call may take before the step is reported as failed (rdzv_conf timeout caps it). */
const DEFAULT_CALL_TIMEOUT_S = 10;

export interface StoreEndpoint {
  host: string;
  port: number;
  launchId: string;
}

/** `host:port[,host:port...]` → etcd endpoints, with the default port. */
export function etcdEndpoints(o: LaunchOptions): { hosts: string[]; display: string } {
  const raw = (o.rdzvEndpoint || `${o.masterAddr}:${DEFAULT_ETCD_PORT}`).trim();
  const secure = o.rdzvConf.etcd_protocol === "https" || o.rdzvConf.etcd_cacert !== undefined;
  const hosts = raw.split(",").map((part) => {
    const m = /^(?:https?:\/\/)?\[?([^\]\s/]+?)\]?(?::(\d+))?\/?$/.exec(part.trim());
    if (!m) {
      throw new RendezvousError(
        `--rdzv_endpoint for etcd must be HOST:PORT, or several separated by commas; got ${JSON.stringify(raw)}. Example: --rdzv_endpoint 10.0.0.5:2379,10.0.0.6:2379`,
      );
    }
    return `${secure ? "https" : "http"}://${m[1].includes(":") ? `[${m[1]}]` : m[1]}:${m[2] ?? DEFAULT_ETCD_PORT}`;
  });
  return { hosts, display: hosts.map((h) => h.replace(/^https?:\/\//, "")).join(",") };
}

function readConfFile(o: LaunchOptions, key: string): Buffer | undefined {
  const file = o.rdzvConf[key];
  if (file === undefined) return undefined;
  try {
    return readFileSync(file);
  } catch (err) {
    throw new RendezvousError(`cannot read --rdzv_conf ${key}=${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): it must be a PEM file this process can read.`);
  }
}

function seconds(o: LaunchOptions, key: string, fallback: number): number {
  const raw = o.rdzvConf[key];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!(n > 0)) throw new RendezvousError(`--rdzv_conf ${key} must be a number of seconds greater than 0, got ${JSON.stringify(raw)}. Example: --rdzv_conf ${key}=10`);
  return n;
}

export class EtcdDirectory {
  private readonly client: Etcd3;
  private lease: Lease | null = null;
  private readonly watchers: Watcher[] = [];
  private closed = false;
  /** This node published the job's store: the job's keys are its to remove. */
  private ownsJob = false;
  readonly prefix: string;
  readonly endpoints: string;
  private readonly callTimeoutMs: number;
  readonly leaseTtlS: number;

  constructor(private readonly o: LaunchOptions) {
    const { hosts, display } = etcdEndpoints(o);
    this.endpoints = display;
    this.prefix = `/tslaunch/${o.rdzvId}/`;
    this.leaseTtlS = Math.max(2, Math.round(seconds(o, "lease_ttl", DEFAULT_LEASE_TTL_S)));
    this.callTimeoutMs = Math.min(seconds(o, "timeout", DEFAULT_CALL_TIMEOUT_S), DEFAULT_CALL_TIMEOUT_S) * 1000;
    const rootCertificate = readConfFile(o, "etcd_cacert");
    const user = o.rdzvConf.etcd_user;
    const password = process.env[ETCD_PASSWORD_ENV];
    if (user !== undefined && !password) {
      throw new RendezvousError(`--rdzv_conf etcd_user=${user} needs the password in ${ETCD_PASSWORD_ENV} (in this process's environment; never on the command line).`);
    }
    this.client = new Etcd3({
      hosts,
      dialTimeout: this.callTimeoutMs,
      defaultCallOptions: () => ({ deadline: Date.now() + this.callTimeoutMs }),
      ...(rootCertificate ? { credentials: { rootCertificate, privateKey: readConfFile(o, "etcd_key"), certChain: readConfFile(o, "etcd_cert") } } : {}),
      ...(user !== undefined ? { auth: { username: user, password: password! } } : {}),
    });
  }

  /** Runs one etcd step; any failure becomes a RendezvousError naming the endpoint and the step. */
  private async step<T>(what: string, run: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        run(),
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${this.callTimeoutMs / 1000} s`)), this.callTimeoutMs + 1000))),
      ]);
    } catch (err) {
      const message = ((err as Error).message || String(err)).replace(/\s+/g, " ").slice(0, 300);
      const auth = /auth|permission|password|user name|token/i.test(message);
      throw new RendezvousError(
        `etcd at ${this.endpoints} failed to ${what}: ${message}. ` +
          (auth
            ? `Check the user (--rdzv_conf etcd_user) and its password (${ETCD_PASSWORD_ENV}).`
            : `Check --rdzv_endpoint, that etcd runs there and is reachable from this node, and its TLS settings (--rdzv_conf etcd_cacert, etcd_cert, etcd_key).`),
      );
    } finally {
      clearTimeout(timer);
    }
  }

  /** This node's lease: its keys go with it when it stops renewing (it died or lost the network). */
  private async ownLease(): Promise<Lease> {
    if (this.lease) return this.lease;
    const lease = this.client.lease(this.leaseTtlS, { autoKeepAlive: true });
    lease.on("lost", () => undefined); // seen by the others as this node leaving; the control channel says the rest
    await this.step("grant this node's lease", () => lease.grant());
    this.lease = lease;
    return lease;
  }

  /** Launching node: says where its control store listens (refused if another job's launcher holds rdzv_id). */
  async publishStore(store: StoreEndpoint): Promise<void> {
    const lease = await this.ownLease();
    const key = `${this.prefix}store`;
    const leaseId = await lease.grant();
    const result = await this.step("publish the store's address", () =>
      this.client.if(key, "Create", "==", 0).then(this.client.put(key).value(JSON.stringify(store)).lease(leaseId)).commit(),
    );
    this.ownsJob = result.succeeded;
    if (!result.succeeded) {
      throw new RendezvousError(
        `another launch already runs with rdzv_id ${JSON.stringify(this.o.rdzvId)} on etcd ${this.endpoints} (key ${key}). ` +
          `Give this job its own --rdzv_id, or wait until that one ends (its keys go within ${this.leaseTtlS} s of its end).`,
      );
    }
  }

  /** Joining node: registers under nodes/<id>; its position among the registered nodes gives its node rank. */
  async register(nodeId: string, info: { host: string; numProcesses: number }): Promise<void> {
    const lease = await this.ownLease();
    await this.step("register this node", () => lease.put(`${this.prefix}nodes/${nodeId}`).value(JSON.stringify(info)).exec());
  }

  /** 1 + how many nodes registered before `nodeId` (node 0 is the launching node). */
  async joinOrder(nodeId: string): Promise<number> {
    const res = await this.step("read the registered nodes", () => this.client.getAll().prefix(`${this.prefix}nodes/`).exec());
    const ordered = res.kvs.slice().sort((a, b) => Number(BigInt(a.create_revision) - BigInt(b.create_revision))).map((kv) => kv.key.toString().slice(this.prefix.length + "nodes/".length));
    const at = ordered.indexOf(nodeId);
    return at < 0 ? ordered.length + 1 : at + 1;
  }

  /** Joining node: waits for the launching node's store address (up to `timeoutMs`). */
  async waitForStore(timeoutMs: number, interrupted: () => boolean): Promise<StoreEndpoint> {
    const deadline = Date.now() + timeoutMs;
    const key = `${this.prefix}store`;
    // A watch wakes this node the moment the launch is announced; the read covers one announced before.
    let announced: StoreEndpoint | null = null;
    let wake: () => void = () => undefined;
    const watcher = await this.step("watch for the launch", () => this.client.watch().key(key).create());
    watcher.on("put", (kv) => {
      announced = JSON.parse(kv.value.toString()) as StoreEndpoint;
      wake();
    });
    watcher.on("error", () => undefined);
    try {
      for (;;) {
        const value = announced ? null : await this.step("read the store's address", () => this.client.get(key).string());
        if (announced) return announced;
        if (value) return JSON.parse(value) as StoreEndpoint;
        if (interrupted() || this.closed) throw new RendezvousError("stopped while waiting for the launching node");
        if (Date.now() > deadline) {
          throw new RendezvousError(
            `no launch with rdzv_id ${JSON.stringify(this.o.rdzvId)} appeared on etcd ${this.endpoints} within join_timeout (${timeoutMs / 1000} s). ` +
              `Start the launch (the %%launch cell or \`tslaunch run\`) with the same --rdzv_endpoint and --rdzv_id, or raise --rdzv_conf join_timeout=SECONDS.`,
          );
        }
        // The watch usually ends this wait; looking again twice a second notices a stop (and a broken watch).
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 500);
        });
      }
    } finally {
      await watcher.cancel().catch(() => undefined);
    }
  }

  /** Launching node: calls `onGone(nodeId)` when a node's key disappears (it left, or its lease expired). */
  async watchNodes(onGone: (nodeId: string) => void): Promise<void> {
    const watcher = await this.step("watch the registered nodes", () => this.client.watch().prefix(`${this.prefix}nodes/`).create());
    watcher.on("delete", (kv) => onGone(kv.key.toString().slice(this.prefix.length + "nodes/".length)));
    watcher.on("error", () => undefined);
    this.watchers.push(watcher);
  }

  /** Ends this node's part: the launching node (the one that published the store) removes every key of the job; every node revokes its lease. */
  async close(removeJob: boolean): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Each step bounded: with an endpoint that accepts and drops connections, a call can wait forever.
    const quick = <T>(p: Promise<T>) => Promise.race([p.catch(() => undefined), new Promise((r) => setTimeout(r, 2000).unref())]);
    for (const w of this.watchers.splice(0)) await quick(w.cancel());
    if (removeJob && this.ownsJob) await quick(this.client.delete().prefix(this.prefix).exec());
    if (this.lease) await quick(this.lease.revoke());
    this.client.close();
  }
}

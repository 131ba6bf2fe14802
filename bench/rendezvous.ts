// Rendezvous time across nodes on this machine: from Launch.run() on node 0 to the world formed
// (every node joined), and to the launch's end, for 2 and 4 nodes of 1 rank each, with the agents
// (`tslaunch agent`, separate processes) already waiting: etcd (a real etcd started here) and c10d
// (node 0's own store; the agents reconnect until it listens). Loopback: tslaunch's protocol cost, not a network's.
import { spawn, type ChildProcess } from "child_process";
import fs from "fs";
import net from "net";
import os from "os";
import path from "path";
import { Launch, optionsFromObject } from "../launcher";
import { stats, type Stats } from "./lib";

const CLI = path.join(__dirname, "..", "bin", "tslaunch.js");
const SECRET = "bench-rendezvous-secret";

export interface RendezvousRow {
  backend: "etcd" | "c10d";
  nodes: number;
  worldMs: Stats;
  doneMs: Stats;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

async function startEtcd(): Promise<{ endpoint: string; stop(): Promise<void> }> {
  const [port, peer] = [await freePort(), await freePort()];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bench-etcd-"));
  const proc = spawn("/usr/bin/etcd", [
    "--data-dir", dir, "--listen-client-urls", `http://127.0.0.1:${port}`, "--advertise-client-urls", `http://127.0.0.1:${port}`,
    "--listen-peer-urls", `http://127.0.0.1:${peer}`, "--initial-advertise-peer-urls", `http://127.0.0.1:${peer}`,
    "--initial-cluster", `default=http://127.0.0.1:${peer}`, "--log-level", "error",
  ], { stdio: "ignore" });
  const exited = new Promise((r) => proc.once("exit", r));
  for (const deadline = Date.now() + 20_000; ; ) {
    const up = await new Promise<boolean>((resolve) => {
      const s: net.Socket = net.connect(port, "127.0.0.1", () => (s.destroy(), resolve(true)));
      s.once("error", () => resolve(false));
    });
    if (up) break;
    if (Date.now() > deadline || proc.exitCode !== null) throw new Error("etcd did not start (is Debian's etcd-server installed?)");
    await new Promise((r) => setTimeout(r, 100));
  }
  await new Promise((r) => setTimeout(r, 300));
  return {
    endpoint: `127.0.0.1:${port}`,
    stop: async () => {
      proc.kill("SIGTERM");
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function oneLaunch(backend: "etcd" | "c10d", nodes: number, endpoint: string, rdzvId: string): Promise<{ world: number; done: number }> {
  const flags = ["--num_nodes", String(nodes), "--rdzv_backend", backend, "--rdzv_endpoint", endpoint, "--rdzv_id", rdzvId, "-n", "1", "--once"];
  const env = { ...process.env, TSLAUNCH_SECRET: SECRET };
  const agents: ChildProcess[] = [];
  const waiting: Promise<void>[] = [];
  const startAgents = () => {
    for (let i = 1; i < nodes; i++) {
      const a = spawn(process.execPath, [CLI, "agent", ...flags], { env, stdio: ["ignore", "ignore", "pipe"] });
      agents.push(a);
      waiting.push(new Promise((resolve) => {
        let err = "";
        a.stderr!.on("data", (d) => {
          err += d;
          if (/registered with etcd|joining c10d/.test(err)) resolve();
        });
      }));
    }
  };
  const options = optionsFromObject({ numProcesses: 1, numNodes: nodes, rdzvBackend: backend, rdzvEndpoint: endpoint, rdzvId });
  const at: { world?: number } = {};
  let t0 = 0;
  const launch = new Launch(
    { options, numProcesses: 1, secret: SECRET, payload: { cwd: process.cwd(), replay: [], body: { executionCount: 1, js: "1", async: false, jsLineToCellLine: [] } } },
    (e) => {
      if (e.type === "world" && at.world === undefined) at.world = performance.now() - t0;
    },
  );
  // Both ways, the agents are up first (c10d: ZeroMQ retries the connection until node 0's store listens).
  startAgents();
  await Promise.all(waiting);
  await new Promise((r) => setTimeout(r, 200));
  t0 = performance.now();
  await launch.run();
  const done = performance.now() - t0;
  await Promise.all(agents.map((a) => new Promise((r) => (a.exitCode !== null ? r(null) : a.once("exit", r)))));
  return { world: at.world!, done };
}

export async function runRendezvous(nodeCounts: number[], reps: number): Promise<RendezvousRow[]> {
  const rows: RendezvousRow[] = [];
  const etcd = await startEtcd();
  try {
    for (const backend of ["etcd", "c10d"] as const) {
      for (const nodes of nodeCounts) {
        const world: number[] = [];
        const done: number[] = [];
        for (let i = 0; i < reps; i++) {
          const endpoint = backend === "etcd" ? etcd.endpoint : `127.0.0.1:${await freePort()}`;
          const r = await oneLaunch(backend, nodes, endpoint, `bench-${backend}-${nodes}-${i}`);
          world.push(r.world);
          done.push(r.done);
        }
        rows.push({ backend, nodes, worldMs: stats(world), doneMs: stats(done) });
      }
    }
  } finally {
    await etcd.stop();
  }
  return rows;
}

export function rendezvousTable(rows: RendezvousRow[]): string {
  const f = (s: Stats) => `${s.min.toFixed(1)} / ${s.median.toFixed(1)} / ${s.max.toFixed(1)}`;
  return [
    "| backend | nodes | run() → world formed (ms, min / median / max) | run() → launch ended |",
    "| --- | --- | --- | --- |",
    ...rows.map((r) => `| ${r.backend} | ${r.nodes} | ${f(r.worldMs)} | ${f(r.doneMs)} |`),
  ].join("\n");
}

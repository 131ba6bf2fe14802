// One rank of the all-reduce benchmark, started by bench/collectives.ts with an IPC channel for the
// rendezvous. Method copied from the gloo anchor (shared/anchors/py/collectives.py): float32 zeros,
// 3 warm-ups, then timed ops each preceded by a barrier; per-op time = max over ranks.
import { Communicator, type Tuning } from "../launcher/api";

interface BenchRankConfig {
  rank: number;
  worldSize: number;
  ranksByNode: number[][];
  runDir: string;
  segmentPrefix: string;
  keyHex: string;
  sizes: number[];
  iters: Record<number, number>;
  tuning?: Partial<Tuning>;
}

const cfg = JSON.parse(process.env.TSL_BENCH_RANK!) as BenchRankConfig;
let round = 0;
const waiters = new Map<number, (all: string[]) => void>();
process.on("message", (m: { round: number; all: string[] }) => {
  waiters.get(m.round)?.(m.all);
  waiters.delete(m.round);
});

async function main(): Promise<void> {
  const comm = await Communicator.connect(
    {
      rank: cfg.rank,
      worldSize: cfg.worldSize,
      ranksByNode: cfg.ranksByNode,
      runDir: cfg.runDir,
      segmentPrefix: cfg.segmentPrefix,
      key: Buffer.from(cfg.keyHex, "hex"),
      host: "127.0.0.1",
      timeoutMs: 120_000,
      exchange: (value) =>
        new Promise((resolve) => {
          const r = round++;
          waiters.set(r, resolve);
          process.send!({ round: r, value });
        }),
    },
    cfg.tuning,
  );
  const results: Record<number, number[]> = {};
  const cpu: Record<number, number> = {};
  try {
    for (const bytes of cfg.sizes) {
      const x = new Float32Array(bytes / 4); // zeros: repeated in-place sums stay finite
      for (let i = 0; i < 3; i++) await comm.allReduce(x);
      const iters = cfg.iters[bytes];
      const times = new Float64Array(iters);
      // CPU seconds this rank spent inside the timed ops (user + system): shows what waiting costs.
      const cpuSecs = new Float64Array(1);
      for (let i = 0; i < iters; i++) {
        await comm.barrier();
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        await comm.allReduce(x);
        times[i] = (performance.now() - t0) / 1000;
        const c = process.cpuUsage(c0);
        cpuSecs[0] += (c.user + c.system) / 1e6;
      }
      await comm.allReduce(times, "max");
      await comm.allReduce(cpuSecs, "sum");
      results[bytes] = [...times];
      cpu[bytes] = cpuSecs[0] / iters;
    }
    const check = new Float32Array(1024).fill(1);
    await comm.allReduce(check);
    if (check[0] !== cfg.worldSize) throw new Error(`sanity check: sum of ones is ${check[0]}, expected ${cfg.worldSize}`);
  } finally {
    await comm.close();
  }
  if (cfg.rank === 0) process.send!({ results, cpu });
}

main().then(
  () => process.disconnect(),
  (err) => {
    console.error(err);
    process.exitCode = 1;
    process.disconnect();
  },
);

/**
 * The core claim: data-parallel training over N ranks follows the same loss curve as one
 * process on the full batch, and keeps the ranks' weights bitwise identical. Ranks are
 * simulated in this process (two model copies, a Promise-based comm), on the wasm backend.
 */
import * as tf from "@tensorflow/tfjs-core";
import { describe, expect, it } from "vitest";
import { simulatedComms } from "../fixtures/tfjs/simulated-comm";
import { trainMlp, TrainMlpOptions, TrainMlpResult } from "../fixtures/tfjs/train-mlp";
import { useWasm, weightsDigest } from "../fixtures/tfjs/setup-wasm";

useWasm();

const STEPS = 100;
const base: TrainMlpOptions = { steps: STEPS, globalBatch: 64, seed: 1, lr: 0.1 };

/** Trains on `worldSize` simulated ranks; returns each rank's result and per-step weight digests. */
async function runRanks(worldSize: number, opts: TrainMlpOptions = base) {
  const digests: string[][] = Array.from({ length: worldSize }, () => []);
  const results: TrainMlpResult[] = await Promise.all(
    simulatedComms(worldSize).map((comm) =>
      trainMlp({ ...opts, comm, onStep: ({ step, model }) => void (digests[comm.rank][step] = weightsDigest(model.weights)) }),
    ),
  );
  return { results, digests };
}

describe("data-parallel training (simulated ranks, wasm backend)", () => {
  // The 1-rank full-batch run, made once and shared, so that each test also runs alone (-t).
  let oneRankRun: ReturnType<typeof runRanks> | undefined;
  const reference = () => (oneRankRun ??= runRanks(1));

  it(`1 rank: ${STEPS} steps learn, leak no tensors, and report the time`, async () => {
    const tensorsBefore = tf.memory().numTensors;
    const [r] = (await reference()).results;
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(r.losses).toHaveLength(STEPS);
    expect(r.losses.every(Number.isFinite)).toBe(true);
    expect(r.losses.slice(-10).reduce((a, b) => a + b) / 10).toBeLessThan(r.losses[0] / 3);
    expect(r.accuracy).toBeGreaterThan(0.8);
    console.log(
      `[timing] 1 rank, ${STEPS} steps on ${tf.getBackend()}: ${r.trainMs.toFixed(0)} ms ` +
        `(${(r.trainMs / STEPS).toFixed(2)} ms/step) + setup ${r.setupMs.toFixed(0)} ms; ` +
        `loss ${r.losses[0].toFixed(3)} -> ${r.losses[STEPS - 1].toFixed(3)}, accuracy ${r.accuracy.toFixed(3)}`,
    );
  });

  it("2 ranks: same loss curve as 1 rank on the full batch (|Δ| ≤ 1e-4), weights bitwise equal every step", async () => {
    const oneRank = await reference();
    const tensorsBefore = tf.memory().numTensors;
    const two = await runRanks(2);
    expect(tf.memory().numTensors).toBe(tensorsBefore);

    const [r0, r1] = two.results;
    expect(r1.losses).toEqual(r0.losses); // the global loss is all-reduced: identical on every rank
    const diffs = r0.losses.map((l, i) => Math.abs(l - oneRank.results[0].losses[i]));
    console.log(`[2 ranks vs 1] max |Δloss| over ${STEPS} steps: ${Math.max(...diffs).toExponential(2)}`);
    expect(Math.max(...diffs)).toBeLessThanOrEqual(1e-4);

    expect(two.digests[0]).toHaveLength(STEPS);
    expect(two.digests[1]).toEqual(two.digests[0]);
    expect(new Set(two.digests[0]).size).toBe(STEPS); // the weights did change every step
    expect(Math.abs(r0.accuracy - oneRank.results[0].accuracy)).toBeLessThanOrEqual(0.01);
  });

  it("is deterministic: same seed, same curve bit for bit; another seed, another curve", async () => {
    const oneRank = await reference();
    const again = await runRanks(1);
    expect(again.results[0].losses).toEqual(oneRank.results[0].losses);
    expect(again.digests[0]).toEqual(oneRank.digests[0]);
    const other = await runRanks(1, { ...base, seed: 2, steps: 5 });
    expect(other.results[0].losses).not.toEqual(oneRank.results[0].losses.slice(0, 5));
  });

  it("4 ranks agree too (shorter run)", async () => {
    const oneRank = await reference();
    const four = await runRanks(4, { ...base, steps: 20 });
    const ref = oneRank.results[0].losses.slice(0, 20);
    expect(Math.max(...four.results[0].losses.map((l, i) => Math.abs(l - ref[i])))).toBeLessThanOrEqual(1e-4);
    for (const d of four.digests.slice(1)) expect(d).toEqual(four.digests[0]);
  });

  it("refuses a global batch that does not split into equal shards", async () => {
    const comm = simulatedComms(3)[0];
    await expect(trainMlp({ ...base, globalBatch: 64, comm })).rejects.toThrow(
      "globalBatch (64) must be divisible by the number of processes (3) so that every rank gets an equal shard; e.g. use 66",
    );
  });
});

import * as tf from "@tensorflow/tfjs-core";
import * as tfl from "@tensorflow/tfjs-layers";
import { describe, expect, it } from "vitest";
import { allReduceGradients, broadcastWeights } from "../../launcher/tfjs";
import type { Comm } from "../../launcher/tfjs";
import { simulatedComms } from "../fixtures/tfjs/simulated-comm";
import { useWasm, weightsDigest } from "../fixtures/tfjs/setup-wasm";

useWasm();

/** A small model; unseeded initializers make each copy differ. */
function smallModel(seed?: number): tfl.Sequential {
  const init = (s: number) => (seed === undefined ? "glorotUniform" : tfl.initializers.glorotUniform({ seed: seed + s }));
  return tfl.sequential({
    layers: [
      tfl.layers.dense({ inputShape: [5], units: 4, activation: "relu", kernelInitializer: init(0), biasInitializer: "randomNormal" }),
      tfl.layers.dense({ units: 3, kernelInitializer: init(1) }),
    ],
  });
}

/** Runs fn once per simulated rank, concurrently, as a launch would run it once per process. */
function onRanks<T>(n: number, fn: (comm: Comm) => Promise<T>): Promise<T[]> {
  return Promise.all(simulatedComms(n).map(fn));
}

describe("broadcastWeights", () => {
  it("makes differently initialised models bitwise equal to rank src's, without leaking tensors", async () => {
    const models = [smallModel(), smallModel(), smallModel()];
    const before = models.map((m) => weightsDigest(m.weights));
    expect(new Set(before).size).toBe(3);
    const tensorsBefore = tf.memory().numTensors;

    await onRanks(3, (comm) => broadcastWeights(models[comm.rank], { src: 1, comm }));

    expect(models.map((m) => weightsDigest(m.weights))).toEqual([before[1], before[1], before[1]]);
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    models.forEach((m) => m.dispose());
  });

  it("accepts plain tf.Variables", async () => {
    const sets = [0, 1].map((r) => [tf.variable(tf.fill([2, 2], r + 1)), tf.variable(tf.scalar(r * 7))]);
    await onRanks(2, (comm) => broadcastWeights(sets[comm.rank], { comm }));
    expect(sets.map((vs) => vs.map((v) => Array.from(v.dataSync())))).toEqual([
      [[1, 1, 1, 1], [0]],
      [[1, 1, 1, 1], [0]],
    ]);
    tf.dispose(sets.flat());
  });

  it("checkLayout rejects ranks whose models differ", async () => {
    const a = smallModel(0);
    const b = tfl.sequential({ layers: [tfl.layers.dense({ inputShape: [5], units: 2 })] });
    const models = [a, b];
    const results = await Promise.allSettled(
      simulatedComms(2).map((comm) => broadcastWeights(models[comm.rank], { comm, checkLayout: true })),
    );
    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected"]);
    expect((results[0] as PromiseRejectedResult).reason.message).toMatch(/ranks disagree on the weight layout/);
    [a, b].forEach((m) => m.dispose());
  });

  it("rejects a src that is not a rank", async () => {
    const [comm] = simulatedComms(1);
    const m = smallModel(0);
    await expect(broadcastWeights(m, { src: 1, comm })).rejects.toThrow("src must be a rank in [0, 0], got 1");
    m.dispose();
  });
});

describe("allReduceGradients", () => {
  it("pairs ranks by position although variable names differ, and averages", async () => {
    const models = [smallModel(3), smallModel(3)];
    // Same architecture, different per-process names: exactly why names must not be matched.
    expect(models[0].trainableWeights[0].name).not.toBe(models[1].trainableWeights[0].name);
    const xs = [tf.randomNormal([4, 5], 0, 1, "float32", 1), tf.randomNormal([4, 5], 0, 1, "float32", 2)];
    const opt = tf.train.sgd(0.1);
    const local = models.map((m, r) =>
      opt.computeGradients(() => tf.mean(tf.square(m.apply(xs[r]) as tf.Tensor)) as tf.Scalar, m.trainableWeights.map((w) => w.read() as tf.Variable)),
    );
    const tensorsBefore = tf.memory().numTensors;

    const reduced = await onRanks(2, (comm) => allReduceGradients(local[comm.rank].grads, models[comm.rank].trainableWeights, { comm }));
    // Only the returned tensors are new: intermediates were disposed.
    expect(tf.memory().numTensors).toBe(tensorsBefore + reduced.reduce((n, m) => n + Object.keys(m).length, 0));

    models.forEach((m, r) => {
      expect(Object.keys(reduced[r])).toEqual(m.trainableWeights.map((w) => w.name));
      m.trainableWeights.forEach((w, i) => {
        const other = models[1 - r].trainableWeights[i].name;
        const got = reduced[r][w.name];
        expect(got.shape).toEqual(w.shape);
        const err = tf.tidy(() => tf.max(tf.abs(tf.sub(got, tf.div(tf.add(local[r].grads[w.name], local[1 - r].grads[other]), 2)))));
        expect(err.dataSync()[0]).toBeLessThan(1e-6);
        err.dispose();
      });
    });
    expect(Array.from(reduced[0][models[0].trainableWeights[0].name].dataSync())).toEqual(
      Array.from(reduced[1][models[1].trainableWeights[0].name].dataSync()),
    );
    tf.dispose([...reduced, ...local.map((l) => l.grads), ...local.map((l) => l.value), ...xs] as tf.TensorContainer[]);
    opt.dispose();
    models.forEach((m) => m.dispose());
  });

  it("refuses gradients and variables that do not match one to one", async () => {
    const [comm] = simulatedComms(1);
    const m = smallModel(0);
    const vars = m.trainableWeights;
    const grads: tf.NamedTensorMap = Object.fromEntries(vars.map((v) => [v.name, tf.zeros(v.shape as number[])]));
    const { [vars[1].name]: dropped, ...missingOne } = grads;
    await expect(allReduceGradients(missingOne, vars, { comm })).rejects.toThrow(
      `no gradient for variable "${vars[1].name}" (vars[1])`,
    );
    await expect(allReduceGradients(grads, vars.slice(1), { comm })).rejects.toThrow(
      `gradients for variables not in vars: "${vars[0].name}"`,
    );
    const wrongShape = { ...grads, [vars[0].name]: tf.zeros([1]) };
    await expect(allReduceGradients(wrongShape, vars, { comm })).rejects.toThrow(/has shape \[1\] but the variable has shape/);
    tf.dispose([grads, wrongShape[vars[0].name], dropped] as tf.TensorContainer[]);
    m.dispose();
  });

  it("checkLayout catches one rank passing variables in another order", async () => {
    const models = [smallModel(0), smallModel(0)];
    const grads = models.map((m) => Object.fromEntries(m.trainableWeights.map((v) => [v.name, tf.ones(v.shape as number[])])));
    const results = await Promise.allSettled(
      simulatedComms(2).map((comm) => {
        const vars = models[comm.rank].trainableWeights;
        return allReduceGradients(grads[comm.rank], comm.rank === 0 ? vars : [...vars].reverse(), { comm, checkLayout: true });
      }),
    );
    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected"]);
    tf.dispose(grads);
    models.forEach((m) => m.dispose());
  });
});

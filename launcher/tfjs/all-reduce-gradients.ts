/** Data-parallel gradient averaging: DDP's all-reduce, between computeGradients and applyGradients. */
import * as tf from "@tensorflow/tfjs-core";
import { Comm, ReduceOp, resolveComm } from "./comm";
import { assertSameLayoutOnAllRanks, flattenToFloat32, unflattenFloat32, VariableLike } from "./variables";

export interface AllReduceGradientsOptions {
  /** How gradients combine across ranks. Default "mean" (each rank's loss being a mean over its shard). */
  op?: ReduceOp;
  /** Collectives; default: tslaunch's, resolved at call time. */
  comm?: Comm;
  /** Check first (one extra tiny collective) that all ranks reduce the same shapes. Default false. */
  checkLayout?: boolean;
}

/**
 * Combines `grads` (from `optimizer.computeGradients`) across ranks with one all-reduce and
 * returns a new `{ [name]: Tensor }` map for `optimizer.applyGradients`, keyed like `grads`.
 *
 * `vars` fixes the order: pass `model.trainableWeights` (or the varList given to
 * computeGradients), the same architecture on every rank. Variable names carry per-process
 * counters ("dense_Dense1/kernel" here, "dense_Dense3/kernel" there), so names only pair each
 * variable with its gradient inside this process; the cross-rank pairing is by position.
 *
 * Every variable must have a gradient and every gradient a variable: a mismatch would make
 * ranks reduce different layouts, so it throws rather than guess. The caller keeps ownership
 * of `grads` (dispose them); the returned tensors are new (dispose them after applyGradients).
 *
 * With op "mean" the result equals the full-batch gradient only if every rank's loss is the
 * mean over an equally sized shard.
 */
export async function allReduceGradients(
  grads: tf.NamedTensorMap,
  vars: readonly VariableLike[],
  options: AllReduceGradientsOptions = {},
): Promise<tf.NamedTensorMap> {
  const { op = "mean", checkLayout = false } = options;
  const comm = resolveComm(options.comm, "allReduceGradients");
  const ordered = gradientsInOrder(grads, vars);
  const shapes = ordered.map((g) => g.shape);
  if (checkLayout) await assertSameLayoutOnAllRanks(shapes, (x, o) => comm.allReduce(x, o), "allReduceGradients");
  if (ordered.length === 0) return {};

  const flat = await flattenToFloat32(ordered);
  const reduced = (await comm.allReduce(flat, op)) ?? flat;
  const tensors = unflattenFloat32(reduced, shapes);
  const out: tf.NamedTensorMap = {};
  vars.forEach((v, i) => (out[v.name] = tensors[i]));
  return out;
}

/** grads[v.name] for each v, after checking the two sides match one to one. */
function gradientsInOrder(grads: tf.NamedTensorMap, vars: readonly VariableLike[]): tf.Tensor[] {
  const fail = (what: string): never => {
    throw new Error(`allReduceGradients: ${what}`);
  };
  if (grads === null || typeof grads !== "object") fail("grads must be the { [name]: Tensor } map from computeGradients");
  if (!Array.isArray(vars)) fail("vars must be an array of variables, e.g. model.trainableWeights");
  const seen = new Set<string>();
  const ordered = vars.map((v, i) => {
    if (seen.has(v.name)) fail(`variable "${v.name}" appears twice in vars`);
    seen.add(v.name);
    const g = grads[v.name];
    if (g == null) {
      fail(
        `no gradient for variable "${v.name}" (vars[${i}]). Every variable in vars needs one, so that all ` +
          `ranks reduce the same layout: pass vars as computeGradients's varList, e.g. ` +
          `model.trainableWeights.map(w => w.read()), and make the loss depend on all of them.`,
      );
    }
    if (g.dtype !== "float32") fail(`gradient of "${v.name}" is ${g.dtype}; only float32 is supported`);
    if (!tf.util.arraysEqual(g.shape, v.shape as number[])) {
      fail(`gradient of "${v.name}" has shape [${g.shape}] but the variable has shape [${v.shape}]`);
    }
    return g;
  });
  const extra = Object.keys(grads).filter((name) => !seen.has(name));
  if (extra.length > 0) {
    fail(
      `gradients for variables not in vars: ${extra.map((n) => `"${n}"`).join(", ")}. Reducing only some ` +
        `of them would leave those unsynchronised across ranks; pass vars covering all of them, or compute ` +
        `gradients only for vars (computeGradients(f, varList)).`,
    );
  }
  return ordered;
}

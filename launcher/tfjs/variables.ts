/**
 * Weights as these helpers see them: either tfjs-core Variables or tfjs-layers LayerVariables
 * (model.weights / model.trainableWeights), typed structurally so that tfjs-layers stays out of
 * our dependencies.
 */
import * as tf from "@tensorflow/tfjs-core";

/** A tfjs-layers LayerVariable: read() gives its tf.Variable, write() assigns it. */
export interface LayerVariableLike {
  readonly name: string;
  /** tfjs-layers types it as (number | null)[]; a variable's shape is always fully known. */
  readonly shape: readonly (number | null)[];
  readonly dtype: tf.DataType;
  read(): tf.Tensor;
  write(value: tf.Tensor): unknown;
}

/** Either kind of variable. `name` is the tf.Variable's name, the key computeGradients uses. */
export type VariableLike = tf.Variable | LayerVariableLike;

export function readVariable(v: VariableLike): tf.Tensor {
  return isLayerVariable(v) ? v.read() : v;
}

export function writeVariable(v: VariableLike, value: tf.Tensor): void {
  // Both share `value`'s data (refcounted), so the caller may dispose `value` afterwards.
  if (isLayerVariable(v)) v.write(value);
  else v.assign(value);
}

function isLayerVariable(v: VariableLike): v is LayerVariableLike {
  return typeof (v as Partial<LayerVariableLike>).read === "function";
}

/** Throws unless every variable is float32: one Float32Array carries them all. */
export function assertFloat32(vars: readonly VariableLike[], caller: string): void {
  for (const v of vars) {
    if (v.dtype !== "float32") {
      throw new TypeError(`${caller}: only float32 weights are supported, but "${v.name}" is ${v.dtype}`);
    }
  }
}

/**
 * One Float32Array holding `tensors` back to back, in order. One concat then one download,
 * so a GPU backend pays a single readback. The result is always a fresh copy: backends may hand
 * out their own storage from data(), and collectives write into the array.
 */
export async function flattenToFloat32(tensors: readonly tf.Tensor[]): Promise<Float32Array> {
  if (tensors.length === 0) return new Float32Array(0);
  const flat = tf.tidy(() => tf.concat(tensors.map((t) => tf.reshape(t, [-1]))));
  try {
    return new Float32Array((await flat.data()) as Float32Array);
  } finally {
    flat.dispose();
  }
}

/** The inverse of flattenToFloat32: new tensors of `shapes`, taken in order from `flat`. */
export function unflattenFloat32(flat: Float32Array, shapes: readonly (readonly number[])[]): tf.Tensor[] {
  const sizes = shapes.map((s) => tf.util.sizeFromShape(s as number[]));
  const expected = sizes.reduce((a, b) => a + b, 0);
  if (flat.length !== expected) {
    throw new RangeError(`unflatten: expected ${expected} values for the shapes given, got ${flat.length}`);
  }
  if (shapes.length === 0) return [];
  // One upload, then split on the device.
  return tf.tidy(() => {
    const parts = tf.split(tf.tensor1d(flat, "float32"), sizes);
    return parts.map((p, i) => tf.reshape(p, shapes[i] as number[]));
  });
}

/**
 * Optional guard against ranks disagreeing on the layout (different models, or variables in a
 * different order), which would silently mix unrelated numbers. Costs one tiny collective:
 * all-reduce [len, -len, sig, -sig] with "max" yields max and -min of each; they differ iff
 * some rank differs.
 */
export async function assertSameLayoutOnAllRanks(
  shapes: readonly (readonly number[])[],
  allReduce: (x: Int32Array, op: "max") => Promise<Int32Array>,
  caller: string,
): Promise<void> {
  const total = shapes.reduce((n, s) => n + tf.util.sizeFromShape(s as number[]), 0);
  const sig = layoutSignature(shapes);
  const probe = new Int32Array([total, -total, sig, -sig]);
  const r = (await allReduce(probe, "max")) ?? probe;
  if (r[0] !== -r[1] || r[2] !== -r[3]) {
    throw new Error(
      `${caller}: ranks disagree on the weight layout (this rank: ${shapes.length} tensors, ` +
        `${total} values; across ranks: ${-r[1]}..${r[0]} values). Every rank must pass the same ` +
        `model architecture with its variables in the same order.`,
    );
  }
}

/** FNV-1a of "s0;s1;..." kept to 30 bits, so that negating it stays an Int32. */
function layoutSignature(shapes: readonly (readonly number[])[]): number {
  const text = shapes.map((s) => s.join("x")).join(";");
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return (h >>> 0) & 0x3fffffff;
}

/** Start every rank from the same weights: DDP's initial broadcast from rank 0. */
import * as tf from "@tensorflow/tfjs-core";
import { Comm, resolveComm } from "./comm";
import {
  assertFloat32,
  assertSameLayoutOnAllRanks,
  flattenToFloat32,
  readVariable,
  unflattenFloat32,
  VariableLike,
  writeVariable,
} from "./variables";

export interface BroadcastWeightsOptions {
  /** The rank whose weights everyone takes. Default 0. */
  src?: number;
  /** Collectives; default: tslaunch's, resolved at call time. */
  comm?: Comm;
  /** Check first (one extra tiny collective) that all ranks have the same weight shapes. Default false. */
  checkLayout?: boolean;
}

/** A tfjs-layers model (anything with `weights`), or the variables themselves. */
export type WeightsSource = { readonly weights: readonly VariableLike[] } | readonly VariableLike[];

/**
 * Makes every rank's weights equal to rank `src`'s, bitwise. Covers all of `model.weights`,
 * trainable or not (e.g. batch-norm statistics), in the model's own order, which is the same on
 * every rank for the same architecture; names are not used, since they carry per-process
 * counters. All ranks must call it (it is a collective). Float32 weights only.
 */
export async function broadcastWeights(model: WeightsSource, options: BroadcastWeightsOptions = {}): Promise<void> {
  const { src = 0, checkLayout = false } = options;
  const comm = resolveComm(options.comm, "broadcastWeights");
  if (!Number.isSafeInteger(src) || src < 0 || src >= comm.worldSize) {
    throw new RangeError(`broadcastWeights: src must be a rank in [0, ${comm.worldSize - 1}], got ${String(src)}`);
  }
  const vars = Array.isArray(model) ? (model as readonly VariableLike[]) : (model as { weights?: readonly VariableLike[] } | null)?.weights;
  if (!Array.isArray(vars)) {
    throw new TypeError("broadcastWeights: expected a tfjs-layers model (with .weights) or an array of variables");
  }
  assertFloat32(vars, "broadcastWeights");
  const current = vars.map(readVariable);
  const shapes = current.map((t) => t.shape);
  if (checkLayout) await assertSameLayoutOnAllRanks(shapes, (x, op) => comm.allReduce(x, op), "broadcastWeights");

  if (vars.length === 0) return;

  // Only src's values matter: other ranks just provide a buffer of the right size to receive into.
  const total = shapes.reduce((n, s) => n + tf.util.sizeFromShape(s), 0);
  const flat = comm.rank === src ? await flattenToFloat32(current) : new Float32Array(total);
  const received = (await comm.broadcast(flat, src)) ?? flat;
  if (comm.rank === src) return; // the source already holds these values
  const values = unflattenFloat32(received, shapes);
  try {
    vars.forEach((v, i) => writeVariable(v, values[i]));
  } finally {
    tf.dispose(values);
  }
}

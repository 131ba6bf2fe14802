/**
 * tslaunch/tfjs: data-parallel training helpers for TensorFlow.js inside a tslaunch launch.
 *
 * Per step, on every rank:  computeGradients (loss = mean over this rank's shard)
 *   -> allReduceGradients(grads, model.trainableWeights) -> applyGradients.
 * (model.fit cannot be made data-parallel: it applies gradients synchronously, leaving no
 * place to await a collective.) Start with broadcastWeights(model) so all ranks agree.
 */
export { shardIndices } from "./shard-indices";
export type { ShardOptions } from "./shard-indices";
export { broadcastWeights } from "./broadcast-weights";
export type { BroadcastWeightsOptions, WeightsSource } from "./broadcast-weights";
export { allReduceGradients } from "./all-reduce-gradients";
export type { AllReduceGradientsOptions } from "./all-reduce-gradients";
export { defaultComm } from "./comm";
export type { Comm, ReduceOp, CollectiveArray } from "./comm";
export type { VariableLike, LayerVariableLike } from "./variables";
export { lossCurveSvg } from "./loss-curve-svg";
export { useWasmBackend } from "./wasm-backend";
export type { LossCurve, LossCurveSvgOptions } from "./loss-curve-svg";

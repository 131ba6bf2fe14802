/**
 * Selects tfjs's WebAssembly backend, loading its .wasm files from the installed npm package.
 * A filesystem path, never a URL: workers may have no network, and the files ship in
 * node_modules/@tensorflow/tfjs-backend-wasm/dist anyway. (tfjs-node would be faster but
 * downloads a native library at install time.)
 */
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { setWasmPaths } from "@tensorflow/tfjs-backend-wasm";

export async function useWasmBackend(): Promise<void> {
  if (tf.getBackend() === "wasm") return;
  const dist = path.join(path.dirname(require.resolve("@tensorflow/tfjs-backend-wasm/package.json")), "dist");
  setWasmPaths(dist + path.sep); // a prefix: the backend appends the file name it picks (SIMD or not)
  if (!(await tf.setBackend("wasm"))) throw new Error(`could not start the tfjs wasm backend from ${dist}`);
  await tf.ready();
}

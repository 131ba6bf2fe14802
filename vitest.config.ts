import { defineConfig } from "vitest/config";

// Test files run one after another: the suites start real kernels, Jupyter servers and worker
// groups, and this machine has 2 cores; in parallel they would measure each other's load.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 90_000,
    reporters: ["default"],
    // @jupyterlab/services logs every websocket it opens and every kernel it sees die: noise in CI logs.
    onConsoleLog: (log) => !/^(Starting WebSocket|Kernel: dead)/.test(log),
  },
});

// Starts the kernel for a Jupyter connection file (what kernel.json's argv runs).
import { readFileSync } from "fs";
import { Kernel } from "./kernel";
import type { ConnectionInfo } from "./jupyter/wire";
import { forwardOwnTypes, resolveOwnPackage } from "./self-import";
import { STARTED_BY } from "./started-by";

/**
 * A kernel whose Jupyter client died (killed without a shutdown_request) would live on, and keep
 * its launch's workers alive. Like ipykernel's parent poller, but whoever started us: the process
 * named by JPY_PARENT_PID (Jupyter clients set it) or else our parent at start (VS Code and other
 * clients start kernels raw). When it is no longer our parent, stop everything and exit. A kernel
 * started by init (parent pid 1, e.g. a service) has no parent to outlive.
 */
function watchParent(kernel: Kernel): void {
  const named = Number(process.env.JPY_PARENT_PID);
  const parent = Number.isInteger(named) && named > 1 && STARTED_BY === named ? named : STARTED_BY;
  if (parent <= 1) return;
  setInterval(() => {
    if (process.ppid === parent) return;
    kernel.abortLaunches();
    process.exit(0);
  }, 1000).unref();
}

export async function startKernel(connectionFile: string): Promise<Kernel> {
  const conn = JSON.parse(readFileSync(connectionFile, "utf8")) as ConnectionInfo;
  if (conn.signature_scheme && conn.signature_scheme !== "hmac-sha256") {
    throw new Error(`unsupported signature_scheme ${conn.signature_scheme}; tslaunch signs with hmac-sha256`);
  }
  resolveOwnPackage();
  forwardOwnTypes(process.cwd());
  const kernel = new Kernel(conn, process.cwd());
  // No worker may outlive the kernel: on any exit path, kill the running launch's workers. (A
  // SIGKILL of the kernel skips this; the workers' lifeline pipe covers that case.)
  process.on("exit", () => kernel.abortLaunches());
  for (const sig of ["SIGTERM", "SIGHUP"] as const) {
    process.on(sig, () => {
      kernel.abortLaunches();
      process.exit(128 + (sig === "SIGTERM" ? 15 : 1));
    });
  }
  process.on("uncaughtException", (err) => process.stderr.write(`Uncaught exception: ${err?.stack ?? err}\n`));
  process.on("unhandledRejection", (err) => process.stderr.write(`Unhandled promise rejection: ${(err as Error)?.stack ?? err}\n`));
  watchParent(kernel); // from the start: a client may die before the kernel is up
  await kernel.start();
  return kernel;
}

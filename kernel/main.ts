// Starts the kernel for a Jupyter connection file (what kernel.json's argv runs).
import { readFileSync } from "fs";
import { Kernel } from "./kernel";
import type { ConnectionInfo } from "./jupyter/wire";
import { forwardOwnTypes, resolveOwnPackage } from "./self-import";

/**
 * A kernel whose Jupyter client died (killed without a shutdown_request) would live on, and keep
 * its launch's workers alive. Like ipykernel's parent poller: when the process that started us
 * (JPY_PARENT_PID, set by Jupyter clients) is no longer our parent, stop everything and exit.
 */
function watchParent(kernel: Kernel): void {
  const parent = Number(process.env.JPY_PARENT_PID);
  if (!Number.isInteger(parent) || parent <= 1 || process.ppid !== parent) return;
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
  await kernel.start();
  watchParent(kernel);
  return kernel;
}

// The one entry path every launch takes: a `%%launch` cell, notebookLauncher()/debugLauncher() and
// `tslaunch run` all come here (as torch's `launch_agent` is where torchrun and elastic_launch meet).
// Steps: resolve the process count → the device guard → the ACCELERATE_DEBUG_MODE probe → open the
// view → run the launch → the report. The host (launch-host.ts) says where the session comes from
// and where events show.
import { existsSync } from "fs";
import { Launch } from "../agent";
import { LaunchError, ReportedError, traceMark, UsageError, type LaunchOptions, type LaunchPayload, type RunResult, type Surface, type WorkerSpec, type World } from "../contract";
import { resolveNumProcesses } from "../devices";
import { debugModeEnabled, runDebugProbe } from "./debug-probe";
import { buildErrorReport } from "./error-report";
import type { LaunchHooks } from "./launch-host";

/** What only some launches need: said once here, so the three callers pass what differs. */
export interface LaunchExtras {
  /** Where the options came from: error messages use its words (default "api"). */
  surface?: Surface;
  /** Environment for this launch only (on top of the host's workerEnv). */
  env?: Record<string, string>;
  /** The shared secret for launches across nodes (else TSLAUNCH_SECRET). */
  secret?: string;
}

/**
 * Runs a launch to its end. Resolves with the result when every rank succeeded; rejects with a
 * LaunchError carrying the one report otherwise, and with a ReportedError (OptionError,
 * DeviceGuardError, ProbeError, RendezvousError) when the launch could not start.
 */
export async function runLaunch(options: LaunchOptions, payload: LaunchPayload, host: LaunchHooks, extras: LaunchExtras = {}): Promise<RunResult> {
  const numProcesses = resolveNumProcesses(options, extras.surface ?? "api");
  if (!existsSync(payload.cwd)) {
    throw new UsageError(
      `the folder the workers start in, ${payload.cwd}, no longer exists (deleted or moved); nothing was started. ` +
        `Recreate it, or restart the kernel (or the script) from a folder that exists.`,
    );
  }
  traceMark("kernel: launch requested");
  host.checkBeforeLaunch?.();
  traceMark("kernel: device guard passed");
  const spec: WorkerSpec = {
    options, numProcesses, payload, env: { ...host.workerEnv, ...extras.env }, execArgv: host.execArgv, secret: extras.secret, prestarted: host.prestarted,
    outputLimit: options.outputLimit ?? host.defaultOutputLimit ?? 0,
  };
  if (debugModeEnabled()) {
    const notice = await runDebugProbe(spec, (e) => host.onEvent(e), (l, running) => host.setActive(l, running));
    host.onEvent({ type: "notice", text: notice });
  }
  host.launchStarted?.(spec);
  traceMark("kernel: live view opened");
  const launch = new Launch(spec, (event) => host.onEvent(event));
  host.setActive(launch, true);
  let world: World | null = null;
  try {
    const result = await launch.run();
    world = result.world;
    if (result.outcome === "succeeded") return result;
    throw new LaunchError(buildErrorReport(result), result);
  } catch (err) {
    if (!(err instanceof LaunchError)) host.launchFailed?.(ReportedError.toCellError(err) ?? { ename: "Error", evalue: String(err), traceback: [String(err)] });
    throw err;
  } finally {
    host.setActive(launch, false);
    host.launchEnded?.(world);
  }
}

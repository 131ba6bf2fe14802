// num_processes when none was given: one worker per visible accelerator, as in Accelerate.
import { visibleAccelerators } from "./accelerators";
import os from "os";
import { OptionError, optionName, specFor, surfaceExample, type LaunchOptions, type Surface } from "../contract";

/**
 * More processes than this on one node is a typo, not a plan (each is a Node process of ~60 MB):
 * 8 per core, at least 64; TSLAUNCH_MAX_PROCESSES raises it for a machine that can take more.
 */
export function maxProcessesPerNode(env: NodeJS.ProcessEnv = process.env): number {
  const raised = Number(env.TSLAUNCH_MAX_PROCESSES);
  return Number.isInteger(raised) && raised > 0 ? raised : Math.max(64, 8 * os.cpus().length);
}

export function resolveNumProcesses(options: LaunchOptions, surface: Surface = "magic"): number {
  if (options.numProcesses !== null) {
    const max = maxProcessesPerNode();
    if (options.numProcesses > max) {
      const spec = specFor("numProcesses");
      throw new OptionError(
        `${optionName(spec, surface)} ${options.numProcesses} is more worker processes than this machine should start ` +
          `(at most ${max}: 8 per core, ${os.cpus().length} cores). Example: ${surfaceExample(surface, [spec])}. ` +
          `To start more on purpose, set TSLAUNCH_MAX_PROCESSES in the environment.`,
      );
    }
    return options.numProcesses;
  }
  const visible = visibleAccelerators();
  if (visible.ids.length > 0) return visible.ids.length;
  throw new OptionError(
    `num_processes was not given and no accelerator is visible to default to. Pass the number of worker processes, e.g. ${surfaceExample(surface, [specFor("numProcesses")])}`,
  );
}

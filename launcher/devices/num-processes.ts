// num_processes when none was given: one worker per visible accelerator, as in Accelerate.
import { visibleAccelerators } from "./accelerators";
import { OptionError, specFor, surfaceExample, type LaunchOptions, type Surface } from "../contract";

export function resolveNumProcesses(options: LaunchOptions, surface: Surface = "magic"): number {
  if (options.numProcesses !== null) return options.numProcesses;
  const visible = visibleAccelerators();
  if (visible.ids.length > 0) return visible.ids.length;
  throw new OptionError(
    `num_processes was not given and no accelerator is visible to default to. Pass the number of worker processes, e.g. ${surfaceExample(surface, [specFor("numProcesses")])}`,
  );
}

// num_processes when none was given: one worker per visible accelerator, as in Accelerate.
import { visibleAccelerators } from "./accelerators";
import { OptionError, type LaunchOptions } from "./options";

export function resolveNumProcesses(options: LaunchOptions, example = "%%launch --num_processes 4"): number {
  if (options.numProcesses !== null) return options.numProcesses;
  const visible = visibleAccelerators();
  if (visible.ids.length > 0) return visible.ids.length;
  throw new OptionError(
    `num_processes was not given and no accelerator is visible to default to. Pass the number of worker processes, e.g. ${example}`,
  );
}

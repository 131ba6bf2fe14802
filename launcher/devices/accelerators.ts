// Which accelerators this machine shows to a launch: what `num_processes` defaults to, as in
// Accelerate ("the number of available devices").
import { readdirSync } from "fs";

export interface VisibleAccelerators {
  kind: "cuda" | "none";
  /** Device ids a worker can be given (CUDA_VISIBLE_DEVICES entries or /dev/nvidiaN numbers). */
  ids: string[];
}

export function visibleAccelerators(env: NodeJS.ProcessEnv = process.env, devDir = "/dev"): VisibleAccelerators {
  const listed = env.CUDA_VISIBLE_DEVICES;
  if (listed !== undefined) {
    // CUDA stops at the first invalid entry; "" or "-1" hides every device.
    const ids: string[] = [];
    for (const raw of listed.split(",").map((s) => s.trim())) {
      if (!raw || raw.startsWith("-")) break;
      ids.push(raw);
    }
    return { kind: ids.length ? "cuda" : "none", ids };
  }
  let names: string[] = [];
  try {
    names = readdirSync(devDir);
  } catch {
    // no /dev to read: no devices
  }
  const ids = names.flatMap((n) => /^nvidia(\d+)$/.exec(n)?.[1] ?? []).sort((a, b) => Number(a) - Number(b));
  return { kind: ids.length ? "cuda" : "none", ids };
}

// The per-launch folder: the channel's ipc socket and the payload live here, in a folder only the
// user can enter (mkdtemp creates it 0700). It is removed when the launch ends, whatever happened.
import { mkdtempSync, rmSync } from "fs";
import os from "os";
import path from "path";

export const LAUNCH_DIR_PREFIX = "tslaunch-";

export interface LaunchDir {
  path: string;
  remove(): void;
}

export async function createLaunchDir(): Promise<LaunchDir> {
  const dir = mkdtempSync(path.join(os.tmpdir(), LAUNCH_DIR_PREFIX));
  return {
    path: dir,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

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

/**
 * A Unix socket path longer than sun_path (108 bytes on Linux; 104 elsewhere) cannot be bound:
 * ZeroMQ says "File name too long". Room is left for the name.
 */
const MAX_SOCKET_PATH = 100;

/**
 * Where the launch's channel listens: an ipc socket in the launch folder, or, when TMPDIR is so long
 * that the socket path would not fit, TCP on loopback (a random port). Both carry only sealed
 * messages (contract/sealed-link.ts): on TCP another local user can connect, but not be heard.
 */
export function channelEndpoint(dir: LaunchDir, name = "agent.sock"): string {
  const socketPath = path.join(dir.path, name);
  return Buffer.byteLength(socketPath) <= MAX_SOCKET_PATH ? `ipc://${socketPath}` : "tcp://127.0.0.1:*";
}

export async function createLaunchDir(): Promise<LaunchDir> {
  const dir = mkdtempSync(path.join(os.tmpdir(), LAUNCH_DIR_PREFIX));
  return {
    path: dir,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

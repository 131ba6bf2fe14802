// Processes a rank starts must end with the launch, including those that left its process tree: a
// detached child (setsid, `nohup … &`) or one whose parent died is reparented, and a search by parent
// pid no longer finds it. What it keeps is its environment: every worker's carries the group's token
// (ENV.segmentPrefix, unique per launch, node and attempt), every process it starts inherits it, and
// at every end of a group (stop.ts lists them) /proc is searched for it. A process that clears its environment on purpose escapes; the
// README's "Security model" says so. The same search runs in each worker's watchdog when the agent
// dies (worker/worker-main.ts), where this module cannot be loaded: it repeats these few lines.
import { readdirSync, readFileSync } from "fs";
import { ENV } from "../contract";

/** The environment entry that marks a group's processes. */
export function groupTokenEntry(token: string): Buffer {
  return Buffer.from(`${ENV.segmentPrefix}=${token}\0`);
}

/** Live processes (of this user: others' environments are unreadable) whose environment holds the token. */
export function markedProcesses(token: string): number[] {
  const entry = groupTokenEntry(token);
  const found: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    let environ: Buffer;
    try {
      environ = readFileSync(`/proc/${name}/environ`);
    } catch {
      continue; // gone, or another user's
    }
    // Entries are NUL-separated: match a whole entry, at the start or after a NUL.
    const at = environ.indexOf(entry.subarray(0, entry.length - 1));
    if (at < 0) continue;
    const end = at + entry.length - 1;
    if ((at === 0 || environ[at - 1] === 0) && (end === environ.length || environ[end] === 0)) found.push(Number(name));
  }
  return found;
}

function signal(pids: number[], sig: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** SIGTERM to every marked process, SIGKILL to those still there after `graceMs`. Returns how many there were. */
export async function endMarkedProcesses(token: string, graceMs: number): Promise<number> {
  const first = markedProcesses(token);
  if (first.length === 0) return 0;
  signal(first, "SIGTERM");
  const deadline = performance.now() + graceMs;
  let left = first;
  while (left.length > 0 && performance.now() < deadline) {
    await sleep(20);
    left = markedProcesses(token);
  }
  signal(left, "SIGKILL");
  // Anything started in the meantime by a process that was just ending: once more, no grace.
  signal(markedProcesses(token), "SIGKILL");
  return first.length;
}

/** The synchronous last resort (the host is exiting): SIGKILL at once. */
export function killMarkedProcessesSync(token: string): void {
  signal(markedProcesses(token), "SIGKILL");
}

// How a launch's processes end: the one place that stops workers, and its time limits. Read this
// file to check the no-orphan guarantee. Who calls it:
// - the agent (agent/agent.ts): a rank failed, or interrupt / stop() was asked → WorkerGroup.stop();
//   at the end of every launch, whatever happened → WorkerGroup.stop();
// - the node agent (agent/node-agent.ts): the store says "stop", a launch finished, or
//   `tslaunch agent` got SIGINT/SIGTERM → WorkerGroup.stop() / killSync();
// - the kernel's exit hooks (kernel/main.ts: process "exit", SIGTERM, SIGHUP, the Jupyter client
//   gone) and `tslaunch run`'s signals (cli/cli.ts) → Launch.abortSync() → WorkerGroup.killSync();
// - and when none of these can run (the agent was SIGKILLed): every worker holds a lifeline pipe
//   whose far end only the agent holds; the worker's watchdog thread kills the worker when it closes
//   (worker/worker-main.ts).
// Every one of these also ends the processes the ranks started, found by the token in their
// environment wherever they moved in the process tree (descendants.ts; the watchdog for the last case).
import type { ChildProcess } from "child_process";

/** SIGTERM first; SIGKILL for whatever still lives this long after. */
export const STOP_GRACE_MS = 1500;
/** How often a stop checks whether the processes have closed. */
export const STOP_POLL_MS = 20;
/** After a rank exited, how long its output pipes are still read if another process holds them open. */
export const PIPE_DRAIN_MS = 500;
/** After a stop, how long node 0 waits for joined nodes to report how their groups ended. */
export const REMOTE_REPORT_MS = 2000;

export interface StoppableProcess {
  child?: ChildProcess;
  /** True once the process's "close" event was seen (exit seen and its pipes drained). */
  closed: boolean;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** SIGTERM to every live process, SIGKILL after `graceMs`; resolves when all have closed. */
export async function stopProcesses(processes: StoppableProcess[], graceMs = STOP_GRACE_MS): Promise<void> {
  const live = processes.filter((p) => !p.closed && p.child);
  if (live.length === 0) return;
  for (const p of live) p.child!.kill("SIGTERM");
  const deadline = performance.now() + graceMs;
  while (!live.every((p) => p.closed) && performance.now() < deadline) await sleep(STOP_POLL_MS);
  for (const p of live) if (!p.closed) p.child!.kill("SIGKILL");
  while (!live.every((p) => p.closed)) await sleep(STOP_POLL_MS / 2);
}

/** The synchronous last resort when the host process is exiting: SIGKILL, no waiting. */
export function killProcessesSync(processes: StoppableProcess[]): void {
  for (const p of processes) if (!p.closed && p.child) p.child.kill("SIGKILL");
}

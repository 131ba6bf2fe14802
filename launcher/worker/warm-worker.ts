// A warm worker: started ahead of a launch by the kernel's warm pool (group/warm-pool.ts), with Node
// up and tslaunch's worker code (zeromq included) loaded, holding its lifeline, idle (no timer, no
// CPU) until the pool hands it a launch over its IPC channel. Then it takes the launch's environment
// as its own, whole (so it sees exactly what a freshly spawned worker would), closes the channel,
// and runs as any worker does (worker-main.ts). It is never given a second launch.
import path from "path";
import { WARM_TITLE, type WarmAssignment } from "../contract";
import { adoptLifeline, holdLifeline, main } from "./worker-main";

function takeEnvironment(env: Record<string, string>): void {
  for (const key of Object.keys(process.env)) if (!(key in env)) delete process.env[key];
  Object.assign(process.env, env);
}

function waitForAssignment(): Promise<WarmAssignment> {
  return new Promise((resolve) => {
    const onMessage = (m: unknown) => {
      if ((m as WarmAssignment)?.type !== "tslaunch-assignment") return;
      process.off("message", onMessage);
      resolve(m as WarmAssignment);
    };
    process.on("message", onMessage);
    // The pool (the kernel) is gone: nothing will come; the lifeline ends this process too.
    process.once("disconnect", () => process.exit(0));
  });
}

async function warmStart(): Promise<void> {
  process.title = WARM_TITLE;
  adoptLifeline(holdLifeline(null));
  const assignment = await waitForAssignment();
  process.removeAllListeners("disconnect");
  takeEnvironment(assignment.env);
  process.chdir(assignment.cwd);
  process.title = assignment.title;
  // What a freshly spawned worker's argv says: node [execArgv...] worker-main.js.
  process.argv[1] = path.join(__dirname, "worker-main.js");
  process.disconnect?.();
  // A freshly spawned worker has no IPC channel: nothing of it stays visible to user code.
  for (const name of ["send", "disconnect", "channel", "connected"] as const) delete (process as unknown as Record<string, unknown>)[name];
  await main();
}

void warmStart();

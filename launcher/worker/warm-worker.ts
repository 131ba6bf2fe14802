// A warm worker: started ahead of a launch by the kernel's warm pool (group/warm-pool.ts), with Node
// up and tslaunch's worker code (zeromq included) loaded, holding its lifeline, idle (no timer, no
// CPU) until the pool writes to its IPC channel. The pool may first have it replay the session's
// cells (pre-replay.ts), then hands it a launch: it takes the launch's environment as its own (so it
// sees exactly what a freshly spawned worker would), closes the channel, and runs as any worker does
// (worker-main.ts), skipping the cells it replayed. It is never given a second launch.
import path from "path";
import { traceMark, WARM_TITLE, type WarmAssignment, type WarmPrepare, type WarmReport } from "../contract";
import { adoptLifeline, holdLifeline, installNotebookGlobals, main } from "./worker-main";
import { PreReplay } from "./pre-replay";

type PoolMessage = WarmAssignment | WarmPrepare;

/** Reports to the pool; a spoiled worker exits once the report is sent. */
function report(r: WarmReport): Promise<void> {
  return new Promise<void>((resolve) => {
    if (!process.connected) return resolve();
    process.send!(r, undefined, {}, () => resolve());
  }).then(() => {
    if (r.type === "tslaunch-spoiled") process.exit(0);
  });
}

/** Output of pre-replayed cells is dropped, as a fresh worker drops its replay's output (worker-main). */
function silenceOutput(): () => void {
  const writes = [process.stdout.write, process.stderr.write];
  for (const stream of [process.stdout, process.stderr]) {
    (stream as unknown as { write: unknown }).write = (_chunk: unknown, encoding?: unknown, cb?: unknown) => {
      const callback = typeof encoding === "function" ? encoding : cb;
      if (typeof callback === "function") process.nextTick(callback as () => void);
      return true;
    };
  }
  return () => {
    process.stdout.write = writes[0];
    process.stderr.write = writes[1];
  };
}

async function warmStart(): Promise<void> {
  process.title = WARM_TITLE;
  adoptLifeline(holdLifeline(null));
  installNotebookGlobals(); // as a fresh worker has them before it replays
  const preReplay = new PreReplay();
  const unsilence = silenceOutput();
  // A replayed cell's timer or promise that fails later: this worker no longer matches a fresh one.
  const late = (err: unknown) => void report(preReplay.spoilLate(`a replayed cell failed later: ${(err as Error)?.message ?? err}`));
  process.on("uncaughtException", late);
  process.on("unhandledRejection", late);
  // The pool (the kernel) is gone: nothing will come; the lifeline ends this process too.
  process.once("disconnect", () => process.exit(0));

  // Messages are handled one at a time, in order: an assignment waits for the replay before it.
  const assignment = await new Promise<WarmAssignment>((resolve) => {
    let chain = Promise.resolve();
    const onMessage = (m: PoolMessage) => {
      if (m?.type === "tslaunch-prepare") chain = chain.then(() => preReplay.prepare(m).then(report));
      else if (m?.type === "tslaunch-assignment") {
        process.off("message", onMessage);
        void chain.then(() => resolve(m));
      }
    };
    process.on("message", onMessage);
  });
  traceMark("worker: assigned");
  process.removeAllListeners("disconnect");
  process.off("uncaughtException", late);
  process.off("unhandledRejection", late);
  unsilence();
  if (assignment.replayed !== preReplay.replayed) {
    process.stderr.write(`tslaunch: internal error: this warm worker replayed ${preReplay.replayed} cells, its launch expected ${assignment.replayed}\n`);
    process.exit(1);
  }
  preReplay.applyLaunchEnvironment(assignment.env);
  process.chdir(assignment.cwd);
  process.title = assignment.title;
  // What a freshly spawned worker's argv says: node [execArgv...] worker-main.js.
  process.argv[1] = path.join(__dirname, "worker-main.js");
  process.disconnect?.();
  // A freshly spawned worker has no IPC channel: nothing of it stays visible to user code.
  for (const name of ["send", "disconnect", "channel", "connected"] as const) delete (process as unknown as Record<string, unknown>)[name];
  const runtime = preReplay.cellRuntime;
  await main(runtime ? { runtime, replayed: preReplay.replayed } : undefined);
}

void warmStart();

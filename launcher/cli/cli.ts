// `tslaunch run` (the torchrun of tslaunch) and `tslaunch agent` (joins a multi-node launch): the
// same agent and flags as %%launch, from a terminal. Output is prefixed per rank; the exit code is
// the job's.
import {
  launchHelp, OptionError, parseLaunchArgv, ReportedError, RendezvousError, LaunchError, type LaunchOptions, type LaunchPayload,
} from "../contract";
import { printLaunchEvent, runLaunch, scriptPayload, type ActiveLaunchHandle } from "../api";
import { NodeAgent } from "../agent";
import { resolveNumProcesses } from "../devices";
import { secretFrom } from "../rendezvous";

/** A usage problem: one line on stderr and exit code 2 (as argparse-based CLIs do). */
function usageFailure(err: unknown): number {
  if (err instanceof OptionError || err instanceof RendezvousError) {
    process.stderr.write(`tslaunch: ${err.message}\n`);
    return 2;
  }
  throw err;
}

export async function runCommand(argv: string[]): Promise<number> {
  // Flags stop at the script: what follows belongs to the script.
  const scriptAt = argv.findIndex((a, i) => !a.startsWith("-") && (i === 0 || !argv[i - 1].startsWith("-") || argv[i - 1].includes("=") || argv[i - 1] === "--"));
  const flags = scriptAt < 0 ? argv : argv.slice(0, scriptAt);
  const rest = scriptAt < 0 ? [] : argv.slice(scriptAt);
  let request: { options: LaunchOptions; payload: LaunchPayload; secret?: string };
  try {
    const { parsed, extra } = parseLaunchArgv(flags, "cli", { secret: { type: "string" } });
    if (parsed.help || rest.length === 0) {
      process.stdout.write(launchHelp("cli") + "\n");
      return parsed.help ? 0 : 2;
    }
    resolveNumProcesses(parsed.options, "cli"); // a usage error before the script is transpiled
    if (parsed.options.numNodes > 1) secretFrom(extra.secret as string | undefined);
    request = { options: parsed.options, payload: scriptPayload(rest[0], rest.slice(1)), secret: extra.secret as string | undefined };
  } catch (err) {
    return usageFailure(err);
  }
  const active = new Set<ActiveLaunchHandle>();
  const onSignal = () => active.forEach((l) => l.interrupt());
  const onExit = () => active.forEach((l) => l.abortSync());
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  process.on("exit", onExit);
  try {
    await runLaunch(request.options, request.payload, { onEvent: printLaunchEvent, setActive: (l, running) => void (running ? active.add(l) : active.delete(l)) }, { surface: "cli", secret: request.secret });
    return 0;
  } catch (err) {
    if (err instanceof LaunchError) {
      process.stderr.write(err.traceback.join("\n") + "\n");
      if (err.name === "KeyboardInterrupt") return 130;
      return err.result.failures[0]?.exitCode ?? 1;
    }
    if (err instanceof OptionError || err instanceof RendezvousError) return usageFailure(err);
    if (ReportedError.is(err)) {
      process.stderr.write(err.traceback.join("\n") + "\n");
      return 1;
    }
    throw err;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

export async function agentCommand(argv: string[]): Promise<number> {
  let agent: NodeAgent;
  try {
    const { parsed, extra } = parseLaunchArgv(argv, "cli", { secret: { type: "string" }, once: { type: "boolean" } });
    if (parsed.help) {
      process.stdout.write(
        "Usage: tslaunch agent --num_nodes N (--node_rank R --master_addr HOST --use_port PORT | --rdzv_backend c10d --rdzv_endpoint HOST:PORT | --rdzv_backend etcd --rdzv_endpoint HOST:PORT[,HOST:PORT]) " +
          "[--num_processes P] [--rdzv_id ID] [--secret S | TSLAUNCH_SECRET] [--once]\n" +
          "Joins a launch hosted by node 0 (a %%launch cell or tslaunch run with the same --num_nodes), runs this node's workers, streams their output back.\n",
      );
      return 0;
    }
    const numProcesses = resolveNumProcesses(parsed.options, "cli");
    if (parsed.options.numNodes < 2) throw new OptionError("tslaunch agent joins a launch across nodes: pass --num_nodes (2 or more), the same as node 0's.");
    agent = new NodeAgent({
      options: parsed.options, numProcesses, secret: secretFrom(extra.secret as string | undefined), once: extra.once === true,
      log: (line) => process.stderr.write(`[tslaunch agent] ${line}\n`),
    });
  } catch (err) {
    return usageFailure(err);
  }
  const stop = () => {
    agent.stop();
    process.exit(130);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  process.on("exit", () => agent.stop());
  const last = await agent.serve();
  return last === "refused" ? 3 : last === "succeeded" || last === "none" ? 0 : 1;
}

// `tslaunch run` (the torchrun of tslaunch) and `tslaunch agent` (joins a multi-node launch): the
// same agent and flags as %%launch, from a terminal. Output is prefixed per rank; the exit code is
// the job's.
import { Launch, type LaunchEvent } from "./agent";
import { buildErrorReport } from "./error-report";
import { launchHelp, parseLaunchArgv, OptionError } from "./options";
import { resolveNumProcesses } from "./num-processes";
import { scriptPayload } from "./script-payload";
import { NodeAgent } from "./node-agent";
import { RendezvousError, secretFrom } from "./rendezvous";

function printEvent(event: LaunchEvent): void {
  if (event.type === "output") process[event.name].write(event.text);
  else if (event.type === "notice") process.stderr.write(`[tslaunch] ${event.text}\n`);
  else if (event.type === "restarting") process.stderr.write(`[tslaunch] ${event.reason}; restart ${event.restartCount}/${event.maxRestarts}\n`);
}

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
  let launch: Launch;
  let worldSize: number;
  try {
    const { parsed, extra } = parseLaunchArgv(flags, `tslaunch run ${flags.join(" ")}`, { secret: { type: "string" } });
    if (parsed.help || rest.length === 0) {
      process.stdout.write(launchHelp().replace(/%%launch \[flags\]\n.*\n/, "tslaunch run [flags] script.ts [args...]\n").replace(/%%launch/g, "tslaunch run") + "\n");
      return parsed.help ? 0 : 2;
    }
    const numProcesses = resolveNumProcesses(parsed.options, "tslaunch run --num_processes 4 script.ts");
    if (parsed.options.numNodes > 1) secretFrom(extra.secret as string | undefined);
    launch = new Launch({ options: parsed.options, numProcesses, payload: scriptPayload(rest[0], rest.slice(1)), secret: extra.secret as string | undefined }, printEvent);
    worldSize = numProcesses * parsed.options.numNodes;
  } catch (err) {
    return usageFailure(err);
  }
  const onSignal = () => launch.interrupt();
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  process.on("exit", () => launch.abortSync());
  try {
    const result = await launch.run();
    if (result.outcome === "succeeded") return 0;
    const report = buildErrorReport(result, result.worldSize || worldSize);
    process.stderr.write(report.traceback.join("\n") + "\n");
    if (result.outcome === "interrupted") return 130;
    const first = result.failures[0];
    return first?.exitCode ?? 1;
  } catch (err) {
    return usageFailure(err);
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

export async function agentCommand(argv: string[]): Promise<number> {
  let agent: NodeAgent;
  try {
    const { parsed, extra } = parseLaunchArgv(argv, `tslaunch agent ${argv.join(" ")}`, { secret: { type: "string" }, once: { type: "boolean" } });
    if (parsed.help) {
      process.stdout.write(
        "Usage: tslaunch agent --num_nodes N (--node_rank R --master_addr HOST --use_port PORT | --rdzv_backend c10d --rdzv_endpoint HOST:PORT) " +
          "[--num_processes P] [--rdzv_id ID] [--secret S | TSLAUNCH_SECRET] [--once]\n" +
          "Joins a launch hosted by node 0 (a %%launch cell or tslaunch run with the same --num_nodes), runs this node's workers, streams their output back.\n",
      );
      return 0;
    }
    const numProcesses = resolveNumProcesses(parsed.options, "tslaunch agent --num_processes 4 ...");
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

#!/usr/bin/env node
// The `tslaunch` command: install/uninstall the kernelspec, start the kernel (what Jupyter runs),
// and execute a notebook without a Jupyter install.
import "../kernel/started-by"; // first: records our parent before anything slow loads
import { Command } from "commander";
import path from "path";
import { installKernelSpec, jupyterDataDir, uninstallKernelSpec } from "../kernel/install/kernelspec";
import { installLabExtension, uninstallLabExtension } from "../kernel/install/labextension-install";

const program = new Command();
program.name("tslaunch").description("TypeScript notebooks that launch distributed work (a tslab-based Jupyter kernel with %%launch)");

const targetOptions = (cmd: Command) =>
  cmd
    .option("--user", "install for the current user (~/.local/share/jupyter)")
    .option("--sys-prefix", "install into the active virtualenv/conda env")
    .option("--prefix <dir>", "install into <dir>/share/jupyter");

targetOptions(program.command("install").description("register the tslaunch kernel (and its JupyterLab extension) with Jupyter")).action((opts) => {
  const dir = installKernelSpec(opts, path.resolve(__filename));
  console.log(`Installed the tslaunch kernelspec in ${dir}`);
  try {
    console.log(`Installed the JupyterLab extension (the live launch view) in ${installLabExtension(jupyterDataDir(opts))}`);
  } catch (err) {
    // The kernel works without it: JupyterLab then shows each launch's text summary.
    console.warn(`Note: ${(err as Error).message}`);
  }
});

targetOptions(program.command("uninstall").description("remove the tslaunch kernelspec and JupyterLab extension")).action((opts) => {
  const dir = uninstallKernelSpec(opts);
  console.log(dir ? `Removed ${dir}` : "No tslaunch kernelspec was installed there.");
  const ext = uninstallLabExtension(jupyterDataDir(opts));
  if (ext) console.log(`Removed ${ext}`);
});

program
  .command("kernel")
  .description("start the kernel (Jupyter runs this from kernel.json)")
  .requiredOption("--connection-file <file>", "Jupyter connection file")
  .action(async (opts) => {
    const { startKernel } = await import("../kernel/main");
    await startKernel(opts.connectionFile);
  });

program
  .command("execute")
  .description("run every cell of a notebook through the tslaunch kernel, print the outputs, save the executed notebook")
  .argument("<notebook>", "the .ipynb file")
  .option("--output <file>", "where to write the executed notebook (default: <name>.executed.ipynb beside it)")
  .option("--timeout <seconds>", "time limit per cell", "600")
  .action(async (notebook: string, opts) => {
    const { runExecuteCommand } = await import("../kernel/client/execute-command");
    process.exitCode = await runExecuteCommand(notebook, opts, path.resolve(__filename));
  });

program
  .command("run")
  .description("run a script in N worker processes (the torchrun of tslaunch); flags as %%launch's, see `tslaunch run --help`")
  .allowUnknownOption(true)
  .helpOption(false)
  .argument("[args...]")
  .action(async (args: string[]) => {
    const { runCommand } = await import("../launcher/cli");
    process.exitCode = await runCommand(args);
  });

program
  .command("agent")
  .description("join a launch across nodes hosted by node 0 (a notebook cell or tslaunch run); see `tslaunch agent --help`")
  .allowUnknownOption(true)
  .helpOption(false)
  .argument("[args...]")
  .action(async (args: string[]) => {
    const { agentCommand } = await import("../launcher/cli");
    // Exit now: the etcd client may keep reconnecting to a dead endpoint and hold the process open.
    // (stdout and stderr are synchronous for pipes and files here: nothing written is lost.)
    process.exit(await agentCommand(args));
  });

program.parseAsync(process.argv).catch((err) => {
  console.error(`tslaunch: ${err?.message ?? err}`);
  process.exit(2);
});

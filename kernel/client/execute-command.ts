// `tslaunch execute NOTEBOOK`: the main job without a Jupyter install. Starts this package's kernel
// with our own client, runs every cell, prints what a person would read, writes the executed
// notebook, and exits non-zero if a cell failed.
import path from "path";
import { executeNotebook } from "./execute-notebook";

export interface ExecuteCommandOptions {
  output?: string;
  timeout?: string;
}

export async function runExecuteCommand(notebook: string, opts: ExecuteCommandOptions, cliPath: string): Promise<number> {
  const notebookPath = path.resolve(notebook);
  const outputPath = path.resolve(opts.output ?? notebookPath.replace(/\.ipynb$/, "") + ".executed.ipynb");
  const timeoutS = Number(opts.timeout ?? "600");
  if (!Number.isFinite(timeoutS) || timeoutS <= 0) {
    process.stderr.write(`tslaunch execute: --timeout must be a number of seconds greater than 0, got ${JSON.stringify(opts.timeout)}\n`);
    return 2;
  }
  // The kernel runs in its own session, so the terminal's Ctrl-C reaches only us: pass it on.
  const abort = new AbortController();
  process.once("SIGINT", () => abort.abort());
  const result = await executeNotebook({
    notebookPath,
    outputPath,
    kernelArgv: [process.execPath, cliPath, "kernel", "--connection-file", "{connection_file}"],
    // Like Jupyter, the kernel starts in the notebook's folder.
    cwd: path.dirname(notebookPath),
    timeoutPerCellMs: timeoutS * 1000,
    print: (text) => void process.stdout.write(text),
    stripAnsi: !process.stdout.isTTY,
    signal: abort.signal,
  });
  process.stdout.write(`\nExecuted notebook written to ${path.relative(process.cwd(), outputPath) || outputPath}\n`);
  if (result.ok) return 0;
  const where = result.failedCell !== undefined ? ` (cell ${result.failedCell + 1} of the notebook)` : "";
  process.stderr.write(`tslaunch execute: the notebook failed${where}${result.error ? `: ${result.error}` : ""}\n`);
  return 1;
}

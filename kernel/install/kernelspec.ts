// `tslaunch install` / `uninstall`: writes the kernelspec from Node (no Python needed), where
// Jupyter looks for kernels: {prefix}/share/jupyter/kernels/tslaunch/kernel.json.
import { mkdirSync, rmSync, writeFileSync, existsSync } from "fs";
import os from "os";
import path from "path";

export const KERNEL_NAME = "tslaunch";

export interface InstallTarget {
  user?: boolean;
  sysPrefix?: boolean;
  prefix?: string;
}

/** The `share/jupyter` folder an install goes to, as `jupyter kernelspec install` chooses it. */
export function jupyterDataDir(target: InstallTarget): string {
  const chosen = [target.user, target.sysPrefix, target.prefix !== undefined].filter(Boolean).length;
  if (chosen > 1) throw new Error("choose one of --user, --sys-prefix and --prefix DIR");
  if (target.prefix !== undefined) return path.join(path.resolve(target.prefix), "share", "jupyter");
  if (target.sysPrefix) {
    const prefix = process.env.VIRTUAL_ENV ?? process.env.CONDA_PREFIX;
    if (!prefix) throw new Error("--sys-prefix needs an active virtualenv or conda env (VIRTUAL_ENV or CONDA_PREFIX); use --prefix DIR instead");
    return path.join(prefix, "share", "jupyter");
  }
  if (target.user || (process.getuid && process.getuid() !== 0)) {
    return process.env.JUPYTER_DATA_DIR ?? path.join(process.env.XDG_DATA_HOME ?? path.join(os.homedir(), ".local", "share"), "jupyter");
  }
  return "/usr/local/share/jupyter";
}

export function kernelSpec(cliPath: string): object {
  return {
    argv: [process.execPath, cliPath, "kernel", "--connection-file", "{connection_file}"],
    display_name: "TypeScript (tslaunch)",
    language: "typescript",
    // Jupyter's interrupt is a SIGINT to the kernel's process group: workers get it too.
    interrupt_mode: "signal",
    metadata: { debugger: false },
  };
}

export function installKernelSpec(target: InstallTarget, cliPath: string): string {
  const dir = path.join(jupyterDataDir(target), "kernels", KERNEL_NAME);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, "kernel.json"), JSON.stringify(kernelSpec(cliPath), null, 2) + "\n");
  return dir;
}

export function uninstallKernelSpec(target: InstallTarget): string | null {
  const dir = path.join(jupyterDataDir(target), "kernels", KERNEL_NAME);
  if (!existsSync(dir)) return null;
  rmSync(dir, { recursive: true, force: true });
  return dir;
}

// Installs tslaunch's prebuilt JupyterLab extension (labextension/, built into
// labextension/dist/labextension/) where JupyterLab looks for prebuilt extensions:
// <jupyter data dir>/labextensions/<package name>/. Called by `tslaunch install` / `uninstall`
// with kernelspec.ts's jupyterDataDir(target), so kernel and view go to the same place.
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, rmdirSync, writeFileSync } from "fs";
import path from "path";

export const LABEXTENSION_NAME = "@tslaunch/labextension";

const BUILD_HINT =
  "build it first: `npm run build:labextension` in the tslaunch repository " +
  "(that is: npm ci --prefix labextension && npm run build --prefix labextension)";

/**
 * The built extension: labextension/dist/labextension next to the package root, whether this
 * module runs compiled (dist/kernel/) or from source (kernel/).
 */
export function builtLabExtensionDir(): string {
  const candidates = [path.resolve(__dirname, "..", "..", ".."), path.resolve(__dirname, "..", "..")].map((root) => path.join(root, "labextension", "dist", "labextension"));
  return candidates.find((d) => existsSync(path.join(d, "package.json"))) ?? candidates[0];
}

interface BuiltPackage {
  name: string;
  version: string;
  jupyterlab?: { _build?: { load?: string } };
}

function readBuilt(dir: string): BuiltPackage {
  const pkgPath = path.join(dir, "package.json");
  if (!existsSync(pkgPath)) throw new Error(`The tslaunch JupyterLab extension is not built (${pkgPath} is missing): ${BUILD_HINT}`);
  const pkg = JSON.parse(readFileSync(pkgPath, "utf8")) as BuiltPackage;
  const load = pkg.jupyterlab?._build?.load;
  if (!load || !existsSync(path.join(dir, load))) {
    throw new Error(`The tslaunch JupyterLab extension in ${dir} is incomplete (no jupyterlab._build.load, or ${load ?? "its remoteEntry"} is missing): ${BUILD_HINT}`);
  }
  return pkg;
}

/** `<jupyterDataDir>/labextensions/@tslaunch/labextension`. */
export function labExtensionInstallDir(jupyterDataDir: string, name = LABEXTENSION_NAME): string {
  return path.join(path.resolve(jupyterDataDir), "labextensions", ...name.split("/"));
}

/**
 * Copies the built extension into `<jupyterDataDir>/labextensions/<name>/` (replacing an earlier
 * install) and returns that folder. Throws, saying how to build it, when the build is missing.
 */
export function installLabExtension(jupyterDataDir: string, builtDir: string = builtLabExtensionDir()): string {
  const pkg = readBuilt(builtDir);
  const dest = labExtensionInstallDir(jupyterDataDir, pkg.name);
  mkdirSync(path.dirname(dest), { recursive: true });
  // Copy next to the destination, then swap: JupyterLab never sees half an extension.
  const staging = `${dest}.installing-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  cpSync(builtDir, staging, { recursive: true });
  // JupyterLab's extension manager shows this for prebuilt extensions.
  writeFileSync(
    path.join(staging, "install.json"),
    JSON.stringify({ packageManager: "npm", packageName: "tslaunch", uninstallInstructions: "Use `tslaunch uninstall`" }, null, 2) + "\n",
  );
  rmSync(dest, { recursive: true, force: true });
  renameSync(staging, dest);
  return dest;
}

/** Removes what installLabExtension put into `jupyterDataDir`; returns the folder removed, or null. */
export function uninstallLabExtension(jupyterDataDir: string): string | null {
  const dest = labExtensionInstallDir(jupyterDataDir);
  if (!existsSync(dest)) return null;
  rmSync(dest, { recursive: true, force: true });
  // The @tslaunch scope folder too, when nothing else is in it.
  const scope = path.dirname(dest);
  try {
    if (readdirSync(scope).length === 0) rmdirSync(scope);
  } catch {
    /* already gone */
  }
  return dest;
}

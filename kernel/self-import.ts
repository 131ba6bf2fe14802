// `import { notebookLauncher } from "tslaunch"` in a cell works whatever folder the notebook is in,
// as tslab does for `import * as tslab from "tslab"`: at run time the name resolves to this running
// package, and for type-checking the converter sees <cwd>/node_modules/tslaunch as this package.
import path from "path";
import * as ts from "@tslab/typescript-for-tslab";
import { resolveOwnPackage } from "../launcher/api";

const PACKAGE_ROOT = path.resolve(__dirname, "..", "..");

export { resolveOwnPackage };

/** Must run before tslab's converter is created: it reads files through ts.sys. */
export function forwardOwnTypes(cwd: string): void {
  const virtualRoot = path.join(cwd, "node_modules", "tslaunch");
  const forward = (p: string) => {
    const rel = path.relative(virtualRoot, p);
    return rel.startsWith("..") || path.isAbsolute(rel) ? p : path.join(PACKAGE_ROOT, rel);
  };
  const sys = ts.sys as unknown as Record<string, (...a: unknown[]) => unknown>;
  for (const name of ["readFile", "fileExists", "directoryExists", "realpath", "getFileSize"] as const) {
    const original = sys[name];
    if (typeof original !== "function") continue;
    sys[name] = (p: unknown, ...rest: unknown[]) => original.call(ts.sys, typeof p === "string" ? forward(p) : p, ...rest);
  }
  const readDirectory = sys.readDirectory;
  sys.readDirectory = (p: unknown, ...rest: unknown[]) => readDirectory.call(ts.sys, typeof p === "string" ? forward(p) : p, ...rest);
}

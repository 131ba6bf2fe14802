// `require("tslaunch")` (and its subpaths) resolves to this running package wherever the code that
// asks lives: a cell, a local module a cell requires, a script's helper file. The kernel and every
// worker install it at start-up, as tslab does for `require("tslab")`.
import Module from "module";
import path from "path";

/** dist/launcher (this file is dist/launcher/worker/own-package.js). */
const LAUNCHER_DIST = path.resolve(__dirname, "..");

/** The file a `tslaunch` or `tslaunch/<subpath>` request names, or null for other requests. */
export function ownPackageFile(request: string): string | null {
  if (request === "tslaunch") return path.join(LAUNCHER_DIST, "index.js");
  const m = /^tslaunch\/([a-z-]+)$/.exec(request);
  return m ? path.join(LAUNCHER_DIST, m[1], "index.js") : null;
}

let installed = false;

export function resolveOwnPackage(): void {
  if (installed) return;
  installed = true;
  const mod = Module as unknown as { _resolveFilename(request: string, ...rest: unknown[]): string };
  const original = mod._resolveFilename;
  mod._resolveFilename = function (request: string, ...rest: unknown[]) {
    return ownPackageFile(request) ?? original.call(this, request, ...rest);
  };
}

// Which TypeScript compiles cells: tslab's fork (@tslab/typescript-for-tslab, TypeScript 5.0.4) or,
// with TSLAUNCH_TYPESCRIPT=next, stock typescript (~5.9) through typescript-next.ts. The choice is a
// require hook: every `require("@tslab/typescript-for-tslab")` (tslab's converter, metadata and
// public modules, and this kernel's own) then gets the shim. It must be installed before any of
// them is loaded: kernel/main.ts imports this module first.
import Module from "module";
import path from "path";

const FORK = "@tslab/typescript-for-tslab";

export const TYPESCRIPT_CHOICE: "fork" | "next" = process.env.TSLAUNCH_TYPESCRIPT === "next" ? "next" : "fork";

type ResolveFilename = (request: string, parent: unknown, isMain: boolean, options?: unknown) => string;

let installed = false;

/** Makes `require("@tslab/typescript-for-tslab")` load the 5.9 shim (and its package.json be typescript's). */
export function useTypeScriptNext(): void {
  if (installed) return;
  installed = true;
  const shim = path.join(__dirname, "typescript-next.js");
  const m = Module as unknown as { _resolveFilename: ResolveFilename };
  const original = m._resolveFilename;
  m._resolveFilename = function (request, parent, isMain, options) {
    if (request === FORK) return shim;
    if (request === `${FORK}/package.json`) request = "typescript/package.json";
    return original.call(this, request, parent, isMain, options);
  };
}

if (TYPESCRIPT_CHOICE === "next") useTypeScriptNext();

// Which TypeScript compiles cells: stock typescript (~5.9, the one this project builds with) through
// typescript-next.ts, or, with TSLAUNCH_TYPESCRIPT=fork, tslab's own fork (@tslab/typescript-for-tslab,
// TypeScript 5.0.4), kept for one release as a way back (docs/decisions.md 58). The choice is a
// require hook: every `require("@tslab/typescript-for-tslab")` (tslab's converter, metadata and
// public modules, and this kernel's own) then gets the shim. It must be installed before any of
// them is loaded: kernel/main.ts imports this module first.
import Module from "module";
import path from "path";

const FORK = "@tslab/typescript-for-tslab";

export const TYPESCRIPT_CHOICE: "fork" | "next" = chooseTypeScript(process.env.TSLAUNCH_TYPESCRIPT);

function chooseTypeScript(value: string | undefined): "fork" | "next" {
  if (value === undefined || value === "" || value === "next") return "next";
  if (value === "fork") return "fork";
  // The kernel's stderr is its log (Jupyter shows it in the server's console): say it, keep the default.
  process.stderr.write(`tslaunch: TSLAUNCH_TYPESCRIPT=${JSON.stringify(value)} is not a choice (next: TypeScript ~5.9, the default; fork: tslab's TypeScript 5.0.4); using next\n`);
  return "next";
}

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

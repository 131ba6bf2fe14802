// tslab's converter builds its compiler options inside createConverter() and offers no way to add
// any. The TypeScript module object cannot be patched (its exports are non-configurable getters),
// so tslab's converter is given its own copy of that object, whose createWatchCompilerHost merges
// the notebook's options (notebook-tsconfig.ts) over tslab's before the program is made.
import { createRequire } from "module";
import type * as ts from "@tslab/typescript-for-tslab";

let notebookOptions: ts.CompilerOptions = {};
/** The program of the converter created last (kept current by the watch program on each cell). */
let lastProgramRef: { current?: ts.BuilderProgram } = {};

/**
 * The program of the converter just created, as it is at each call: local-modules.ts needs it to
 * compile what tslab's converter leaves out (.tsx modules). Call right after createConverter().
 */
export function programOfLastConverter(): () => ts.BuilderProgram | undefined {
  const ref = lastProgramRef;
  return () => ref.current;
}

/** Options for the converters created from now on (the session sets them before creating its own). */
export function setCellCompilerOptions(options: ts.CompilerOptions): void {
  notebookOptions = { ...options };
}

/**
 * Puts the TypeScript copy in place for tslab. Must run before tslab's converter module is first
 * loaded: it keeps the module object it got.
 */
export function installCellCompilerOptionsHook(): void {
  const tslabRequire = createRequire(require.resolve("tslab/dist/converter"));
  const converterPath = tslabRequire.resolve("./converter");
  if (require.cache[converterPath]) throw new Error("tslab's converter was loaded before the notebook's compiler options could reach it");
  const typescriptPath = tslabRequire.resolve("@tslab/typescript-for-tslab");
  const real = tslabRequire(typescriptPath) as typeof ts & Record<string, unknown>;
  if ((real as { __tslaunchCellOptions?: true }).__tslaunchCellOptions) return;
  const copy: Record<string, unknown> = {};
  for (const name of Object.keys(real)) Object.defineProperty(copy, name, { enumerable: true, configurable: true, get: () => real[name] });
  Object.defineProperty(copy, "__tslaunchCellOptions", { value: true });
  Object.defineProperty(copy, "createWatchCompilerHost", {
    enumerable: true,
    value: (rootFiles: string[], options: ts.CompilerOptions, ...rest: unknown[]) => {
      const host = (real.createWatchCompilerHost as (...a: unknown[]) => ts.WatchCompilerHost<ts.BuilderProgram>)(rootFiles, { ...options, ...notebookOptions }, ...rest);
      // tslab sets afterProgramCreate to keep the program to itself; the program is noted here too.
      const ref: { current?: ts.BuilderProgram } = {};
      lastProgramRef = ref;
      let assigned = host.afterProgramCreate;
      Object.defineProperty(host, "afterProgramCreate", {
        configurable: true,
        enumerable: true,
        get: () => (program: ts.BuilderProgram) => {
          ref.current = program;
          assigned?.(program);
        },
        set: (f: typeof assigned) => void (assigned = f),
      });
      return host;
    },
  });
  require.cache[typescriptPath]!.exports = copy;
}

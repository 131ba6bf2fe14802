// tslab's converter builds its compiler options inside createConverter() and offers no way to add
// any. The TypeScript module object cannot be patched (its exports are non-configurable getters),
// so tslab's converter is given its own copy of that object, whose createWatchCompilerHost merges
// the notebook's options (notebook-tsconfig.ts) over tslab's before the program is made.
import { createRequire } from "module";
import path from "path";
import type * as ts from "@tslab/typescript-for-tslab";
import { ParsedDeclarations } from "./declaration-preparse";
import { lightBuilderFactory } from "./light-builder";

let notebookOptions: ts.CompilerOptions = {};
/** Declaration files parsed before the first converter is made (declaration-preparse.ts). */
let declarations: ParsedDeclarations | null = null;
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
      // rest: system, createProgram (tslab passes none: TypeScript's builder), reporters.
      const [system, , ...reporters] = rest;
      const create = real.createWatchCompilerHost as (...a: unknown[]) => ts.WatchCompilerHost<ts.BuilderProgram>;
      const lookup = (fileName: string, wanted: ts.ScriptTarget | ts.CreateSourceFileOptions) => declarations?.lookup(fileName, wanted);
      const host = create(rootFiles, { ...options, ...notebookOptions }, system, lightBuilderFactory(real, lookup), ...reporters);
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
  const transpiled = new TranspileMemo(real.transpileModule);
  Object.defineProperty(copy, "transpileModule", { enumerable: true, value: (input: string, options: ts.TranspileOptions) => transpiled.get(input, options) });
  require.cache[typescriptPath]!.exports = copy;
}

/**
 * Parses, one file per `turn()`, the declaration files a converter made now in `cwd` will read:
 * tslab's own options (Node >= 18: target ES2022, lib es2022; its type roots) under the notebook's.
 * Stops early when `stop()` says a cell is waiting (the converter then parses the rest itself).
 */
export async function preparseCellDeclarations(cwd: string, notebook: ts.CompilerOptions, turn: () => Promise<void>, stop: () => boolean): Promise<void> {
  const typescript = require(createRequire(require.resolve("tslab/dist/converter")).resolve("@tslab/typescript-for-tslab")) as typeof ts;
  declarations ??= new ParsedDeclarations(typescript);
  const options: ts.CompilerOptions = {
    module: typescript.ModuleKind.ESNext,
    moduleResolution: typescript.ModuleResolutionKind.Node10,
    target: typescript.ScriptTarget.ES2022,
    lib: ["lib.es2022.d.ts"],
    typeRoots: tslabTypeRoots(typescript, cwd),
    ...notebook,
  };
  await declarations.parseFor(options, cwd, turn, stop);
}

/** What was parsed beforehand, and how much of it the converters took (for tests and the bench). */
export function declarationPreparseStats(): { parsed: number; hits: number; misses: number } {
  return declarations?.stats ?? { parsed: 0, hits: 0, misses: 0 };
}

/** tslab's type roots: every node_modules/@types above cwd, plus its own when none has @types/node. */
function tslabTypeRoots(typescript: typeof ts, cwd: string): string[] {
  const getDefaultTypeRoots = (typescript as unknown as { getDefaultTypeRoots(cwd: string, host: { directoryExists(d: string): boolean }): string[] | undefined }).getDefaultTypeRoots;
  const roots = getDefaultTypeRoots(cwd, { directoryExists: typescript.sys.directoryExists }) ?? [];
  if (roots.some((root) => typescript.sys.fileExists(`${root}/node/package.json`))) return roots;
  return [...roots, path.join(require.resolve("tslab/package.json"), "..", "node_modules", "@types")];
}

/**
 * tslab turns every cell's output into CommonJS with transpileModule, which builds a program and a
 * type checker each time (about half of a `1+1` cell's time in the kernel). It is a pure function of
 * its input: a cell run again (the usual edit-run loop, re-running a cell above) takes the output
 * it had. Bounded in entries and in characters held.
 */
class TranspileMemo {
  private readonly entries = new Map<string, ts.TranspileOutput>();
  private chars = 0;

  constructor(
    private readonly transpile: (input: string, options: ts.TranspileOptions) => ts.TranspileOutput,
    private readonly maxEntries = 256,
    private readonly maxChars = 4 * 1024 * 1024,
  ) {}

  get(input: string, options: ts.TranspileOptions): ts.TranspileOutput {
    if (options.transformers || options.reportDiagnostics) return this.transpile(input, options);
    const key = `${JSON.stringify(options)}\u0000${input}`;
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key); // most recently used last
      this.entries.set(key, hit);
      return hit;
    }
    const out = this.transpile(input, options);
    const size = key.length + out.outputText.length;
    if (size > this.maxChars / 8) return out;
    this.entries.set(key, out);
    this.chars += size;
    for (const [k, v] of this.entries) {
      if (this.entries.size <= this.maxEntries && this.chars <= this.maxChars) break;
      this.entries.delete(k);
      this.chars -= k.length + v.outputText.length;
    }
    return out;
  }
}

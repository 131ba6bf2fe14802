// Runs recorded cells in a worker the way tslab's executor runs them in the kernel: each cell's
// CommonJS output is wrapped in a function of (exports, require), where `exports` carries the
// session's top-level names from cell to cell. No TypeScript compiler is loaded here.
import Module from "module";
import path from "path";
import vm from "vm";
import { deserialize } from "v8";
import { cellFileName, type LaunchPayload, type RecordedCell } from "../contract";
import { ownPackageFile } from "./own-package";

export interface CellRuntime {
  exports: Record<string, unknown>;
  require: NodeJS.Require;
  /**
   * import() for recorded code: vm-compiled code has no dynamic-import hook of its own, a function
   * made here does (a script that is an ES module is imported this way in its workers).
   */
  importModule: (specifier: string) => Promise<unknown>;
}

/** tslab's converter turns named imports into defineProperty calls; names must stay rewritable. */
function createSessionExports(): Record<string, unknown> {
  const store: Record<string, unknown> = {};
  return new Proxy(store, {
    defineProperty: (_t, prop, attrs) => {
      if (prop === "__esModule") return true;
      store[prop as string] = attrs.get ? attrs.get() : attrs.value;
      return true;
    },
  });
}

function createSessionRequire(payload: LaunchPayload): NodeJS.Require {
  const base = Module.createRequire(path.join(payload.cwd, "__tslaunch_session__.js"));
  const side = new Map((payload.sideOutputs ?? []).map((s) => [s.path, s.data]));
  const sideModules = new Map<string, unknown>();

  const requireSide = (dir: string, id: string): { found: boolean; exports?: unknown } => {
    if (!id.startsWith(".")) return { found: false };
    let file = path.join(dir, id);
    if (!path.extname(file)) file += ".js";
    if (sideModules.has(file)) return { found: true, exports: sideModules.get(file) };
    const code = side.get(file);
    if (code === undefined) return { found: false };
    const mod = new Module(file) as Module & { _compile(code: string, file: string): void; paths: string[] };
    mod.filename = file;
    mod.paths = (Module as unknown as { _nodeModulePaths(d: string): string[] })._nodeModulePaths(path.dirname(file));
    mod.require = wrap(mod.require.bind(mod), path.dirname(file)) as NodeJS.Require;
    mod._compile(code, file);
    sideModules.set(file, mod.exports);
    return { found: true, exports: mod.exports };
  };

  const wrap = (req: (id: string) => unknown, dir: string) =>
    new Proxy(req, {
      apply: (_t, thisArg, args: unknown[]) => {
        const id = args[0];
        if (args.length === 1 && typeof id === "string") {
          if (id === "tslab") return require("./worker-display");
          // The package's public face, for the user's code (not an import of this module's own:
          // resolved at run time, so the worker folder stays below the API in the layering).
          const own = ownPackageFile(id);
          if (own) return require(own);
          const s = requireSide(dir, id);
          if (s.found) return s.exports;
        }
        return Reflect.apply(req, thisArg, args);
      },
    });
  return wrap(base, payload.cwd) as unknown as NodeJS.Require;
}

export function createCellRuntime(payload: LaunchPayload): CellRuntime {
  const runtime: CellRuntime = {
    exports: createSessionExports(),
    require: createSessionRequire(payload),
    importModule: new Function("specifier", "return import(specifier)") as CellRuntime["importModule"],
  };
  // The recorded code refers to __tslab__.exports / __tslab__.require, as in tslab's kernel.
  vm.runInThisContext("(x) => { globalThis.__tslab__ = x; }")(runtime);
  return runtime;
}

/**
 * Runs one recorded cell. The wrapper's opening is on its own line and `lineOffset: -1` makes the
 * stack's line numbers equal the recorded JavaScript's, which the kernel maps back to cell lines.
 * For the function API, `argsV8` holds the arguments; the body leaves its value in `exports`.
 */
/** The answers prompt()/input() gave in the kernel to the cell being replayed, still to give. */
let replayAnswers: string[] = [];

/** The next recorded prompt()/input() answer of the replayed cell (undefined in a body: ranks have no stdin). */
export function nextReplayAnswer(): string | undefined {
  return replayAnswers.shift();
}

export async function runCell(runtime: CellRuntime, cell: RecordedCell, isBody: boolean, argsV8?: string): Promise<unknown> {
  replayAnswers = isBody ? [] : [...(cell.stdinAnswers ?? [])];
  if (argsV8 !== undefined) runtime.exports.__tslaunch_args__ = deserialize(Buffer.from(argsV8, "base64"));
  const head = cell.async ? "(async function(exports, require) {" : "(function(exports, require) {";
  const wrapped = `${head}\n${cell.js}\n})(__tslab__.exports, __tslab__.require)`;
  // displayErrors: false keeps V8 from prepending the generated source line to the stack.
  const ret = vm.runInThisContext(wrapped, { filename: cellFileName(cell.executionCount, isBody), lineOffset: -1, displayErrors: false });
  if (cell.async) await ret;
  if (!cell.lastExpressionVar) return undefined;
  const value = runtime.exports[cell.lastExpressionVar];
  delete runtime.exports[cell.lastExpressionVar];
  return value instanceof Promise ? await value : value;
}

// The notebook's own TypeScript setup: a tsconfig.json beside the notebook (or up the tree, found
// as tsc finds it) sets the compiler options of its cells and of the local modules they import.
// tslab's converter hard-codes its options; cell-compiler-options.ts merges these into them.
import path from "path";
import * as ts from "@tslab/typescript-for-tslab";

/** What the notebook's tsconfig.json gives the cells, and what it could not. */
export interface NotebookTsconfig {
  /** The file read, or null when there is none up the tree. */
  file: string | null;
  /** Options merged over tslab's own (only those in CELL_OPTIONS). */
  options: ts.CompilerOptions;
  /** Lines for the user: unreadable file, invalid values, options the kernel cannot honor. */
  problems: string[];
}

/**
 * Options a notebook may set: type-checking strictness, language level, module lookup (`paths`,
 * `baseUrl`: cell-runtime.ts maps them at run time too), JSX for imported .tsx modules, decorators.
 */
const CELL_OPTIONS = new Set([
  "strict", "noImplicitAny", "strictNullChecks", "strictFunctionTypes", "strictBindCallApply",
  "strictPropertyInitialization", "noImplicitThis", "useUnknownInCatchVariables",
  "noImplicitReturns", "noFallthroughCasesInSwitch", "noUncheckedIndexedAccess", "exactOptionalPropertyTypes",
  "noImplicitOverride", "noPropertyAccessFromIndexSignature", "allowUnreachableCode", "allowUnusedLabels",
  "noUnusedLocals", "noUnusedParameters",
  "target", "lib", "useDefineForClassFields",
  "jsx", "jsxFactory", "jsxFragmentFactory", "jsxImportSource",
  "paths", "baseUrl", "types", "typeRoots",
  "experimentalDecorators", "emitDecoratorMetadata", "esModuleInterop", "allowSyntheticDefaultImports",
  "resolveJsonModule", "checkJs",
]);

/**
 * Options about where and how a project emits, which mean nothing for cells compiled in memory:
 * dropped without a word (nearly every tsconfig.json has some).
 */
const EMIT_LAYOUT_OPTIONS = new Set([
  "module", "moduleResolution", "outDir", "outFile", "rootDir", "rootDirs", "declaration", "declarationDir",
  "declarationMap", "emitDeclarationOnly", "sourceMap", "inlineSourceMap", "inlineSources", "sourceRoot", "mapRoot",
  "composite", "incremental", "tsBuildInfoFile", "noEmit", "noEmitOnError", "removeComments", "importHelpers",
  "isolatedModules", "verbatimModuleSyntax", "skipLibCheck", "skipDefaultLibCheck", "forceConsistentCasingInFileNames",
  "allowJs", "newLine", "pretty", "listFiles", "listEmittedFiles", "traceResolution", "diagnostics", "extendedDiagnostics",
  "moduleDetection", "resolvePackageJsonExports", "resolvePackageJsonImports", "allowImportingTsExtensions",
  "allowArbitraryExtensions", "customConditions", "noImplicitUseStrict", "alwaysStrict", "preserveConstEnums",
  "configFilePath", "pathsBasePath", "noEmitHelpers", "emitBOM", "downlevelIteration", "declarationMap", "importsNotUsedAsValues", "preserveValueImports", "ignoreDeprecations", "stripInternal", "noErrorTruncation", "preserveWatchOutput",
]);

/** Cells run as async functions and are interrupted at their awaits: older targets would downlevel those. */
const OLDEST_TARGET = ts.ScriptTarget.ES2017;

/** "No inputs were found in config file": a notebook's tsconfig needs no `include` that matches. */
const NO_INPUTS = 18003;

export function findNotebookTsconfig(cwd: string): string | null {
  return ts.findConfigFile(cwd, (f) => ts.sys.fileExists(f), "tsconfig.json") ?? null;
}

/** Reads the tsconfig.json for a notebook in `cwd` (up the tree); never throws. */
export function readNotebookTsconfig(cwd: string): NotebookTsconfig {
  const file = findNotebookTsconfig(cwd);
  if (!file) return { file: null, options: {}, problems: [] };
  const where = `tsconfig.json (${file})`;
  const read = ts.readConfigFile(file, (f) => ts.sys.readFile(f));
  if (read.error) {
    return { file, options: {}, problems: [`${where} could not be read, so cells use the kernel's defaults: ${flatten(read.error)}. Fix the file and restart the kernel.`] };
  }
  const parsed = ts.parseJsonConfigFileContent(read.config, ts.sys, path.dirname(file), undefined, file);
  const problems = parsed.errors.filter((e) => e.code !== NO_INPUTS).map((e) => `${where}: ${flatten(e)}`);
  const options: ts.CompilerOptions = {};
  const unsupported: string[] = [];
  for (const [name, value] of Object.entries(parsed.options)) {
    if (CELL_OPTIONS.has(name)) options[name] = value;
    else if (!EMIT_LAYOUT_OPTIONS.has(name)) unsupported.push(name);
  }
  if (options.target !== undefined && options.target < OLDEST_TARGET) {
    problems.push(`${where}: "target" ${ts.ScriptTarget[options.target]} is not used for cells: they need ES2017 or later (cells are async functions, interrupted at their awaits). Cells use the kernel's target; set "target": "ES2017" or later to choose.`);
    delete options.target;
  }
  if (options.jsx === ts.JsxEmit.Preserve || options.jsx === ts.JsxEmit.ReactNative) {
    problems.push(`${where}: "jsx" ${options.jsx === ts.JsxEmit.Preserve ? "preserve" : "react-native"} is not used for cells: it leaves JSX in the output, which Node cannot run. Cells use "react"; set "jsx" to "react", "react-jsx" or "react-jsxdev".`);
    delete options.jsx;
  }
  if (unsupported.length > 0) {
    problems.push(`${where}: ignored for cells: ${unsupported.sort().join(", ")}. Cells take the type-checking, target, lib, paths/baseUrl, types and JSX options; see docs/decisions.md.`);
  }
  if (options.lib === undefined && options.target !== undefined) {
    // tsc's default lib for a target adds the DOM; a notebook kernel runs in Node, as tslab's own default says.
    options.lib = [ts.getDefaultLibFileName(options).replace(/\.full\.d\.ts$/, ".d.ts")];
  }
  return { file, options, problems };
}

/** The program's option and global errors (they name no file), as lines for the user. */
export function compilerOptionProblems(program: ts.Program | undefined, tsconfigFile: string | null): string[] {
  if (!program) return [];
  const where = tsconfigFile ? `tsconfig.json (${tsconfigFile})` : "TypeScript";
  return [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics()]
    .filter((d) => d.category === ts.DiagnosticCategory.Error && !d.file)
    .map((d) => `${where}: ${flatten(d)}`);
}

function flatten(d: ts.Diagnostic): string {
  return ts.flattenDiagnosticMessageText(d.messageText, " ");
}

// Local modules imported from cells, beyond what tslab's converter does for them:
// - `paths` and `baseUrl` in the notebook's tsconfig.json let cells write `import { f } from "@lib/f"`.
//   TypeScript resolves such names for type-checking but emits them unchanged, and at run time Node
//   (and tslab's executor, which serves the compiled local modules) knows only relative names. Every
//   require()/import() of a name that the options resolve to a local source file is rewritten, in
//   the compiled JavaScript, into the relative path of that file, which tslab's executor finds.
// - tslab compiles imported .ts and .js files but not .tsx/.jsx ones (its dependency filter), which
//   is where the notebook's `jsx` options matter: they are checked and compiled here.
import path from "path";
import * as ts from "@tslab/typescript-for-tslab";
import { esModuleToCommonJSModule, type Converter, type ConvertResult } from "tslab/dist/converter";

/** tslab's converter writes into this virtual folder, relative to the notebook's folder. */
const TSLAB_OUT_DIR = "outDir";
const JSX_MODULE = /\.(tsx|jsx)$/;

/**
 * A converter whose output (the cell's and its local modules') also holds the cell's .tsx/.jsx
 * modules, and loads `paths` aliases by relative name. `program` is the converter's own.
 */
export function withLocalModules(converter: Converter, cwd: string, options: ts.CompilerOptions, program: () => ts.BuilderProgram | undefined): Converter {
  const rewrite = pathAliasRewriter(options);
  const cellFile = path.join(cwd, "__tslab__.ts");
  /** Version of each .tsx/.jsx module when it was last compiled: unchanged ones are not again. */
  const compiled = new Map<string, string>();
  return {
    ...converter,
    convert: (prevDecl, src) => {
      const result = converter.convert(prevDecl, src);
      const builder = program();
      if (result.diagnostics.length > 0 || result.output === undefined || !builder) return result;
      const jsxModules = builder.getAllDependencies(builder.getSourceFile(cellFile)!).filter((f) => JSX_MODULE.test(f));
      if (jsxModules.length > 0) {
        const failed = compileJsxModules(builder, jsxModules, compiled, cwd, result);
        if (failed) return failed;
      }
      if (rewrite) {
        result.output = rewrite(result.output, cellFile);
        for (const side of result.sideOutputs ?? []) side.data = rewrite(side.data, side.path);
      }
      return result;
    },
  };
}

/** Type-checks and compiles the .tsx/.jsx modules into `result.sideOutputs`; their errors fail the cell. */
function compileJsxModules(builder: ts.BuilderProgram, files: string[], compiled: Map<string, string>, cwd: string, result: ConvertResult): ConvertResult | null {
  const program = builder.getProgram();
  const diagnostics: ConvertResult["diagnostics"] = [];
  for (const file of files) {
    for (const d of ts.getPreEmitDiagnostics(program, builder.getSourceFile(file))) {
      if (d.category !== ts.DiagnosticCategory.Error || !d.file || d.start === undefined) continue;
      const at = (offset: number) => ({ offset, ...d.file!.getLineAndCharacterOfPosition(offset) });
      diagnostics.push({
        start: at(d.start),
        end: at(d.start + (d.length ?? 0)),
        messageText: ts.flattenDiagnosticMessageText(d.messageText, "\n"),
        category: d.category,
        code: d.code,
        fileName: path.relative(cwd, d.file.fileName),
      });
    }
  }
  if (diagnostics.length > 0) return { diagnostics };
  for (const file of files) {
    const source = builder.getSourceFile(file)!;
    const version = (source as ts.SourceFile & { version?: string }).version ?? "";
    if (compiled.get(file) === version) continue;
    builder.emit(source, (fileName, data) => {
      if (!fileName.endsWith(".js")) return;
      (result.sideOutputs ??= []).push({
        path: path.join(cwd, path.relative(TSLAB_OUT_DIR, fileName)),
        // Module syntax only: the program already compiled for the notebook's target.
        data: esModuleToCommonJSModule(data, ts.ScriptTarget.ESNext),
      });
    });
    compiled.set(file, version);
  }
  return null;
}

/** Maps names resolved by `paths`/`baseUrl` to relative ones; null when the options have neither. */
function pathAliasRewriter(options: ts.CompilerOptions): ((js: string, containingFile: string) => string) | null {
  if (!options.paths && !options.baseUrl) return null;
  const resolutionOptions: ts.CompilerOptions = { ...options, moduleResolution: ts.ModuleResolutionKind.Node10, allowJs: true, resolveJsonModule: true };
  const localTarget = (specifier: string, containingFile: string): string | null => {
    if (specifier.startsWith(".") || path.isAbsolute(specifier)) return null;
    // No resolution cache: a module the notebook adds later must be found on the next cell, as the
    // type checker (whose watch program sees the new file) already finds it.
    const resolved = ts.resolveModuleName(specifier, containingFile, resolutionOptions, ts.sys).resolvedModule;
    if (!resolved || resolved.isExternalLibraryImport || resolved.extension === ts.Extension.Dts) return null;
    const withoutExtension = resolved.resolvedFileName.replace(/\.(tsx?|jsx?|mts|cts|mjs|cjs)$/, "");
    let relative = path.relative(path.dirname(containingFile), withoutExtension).split(path.sep).join("/");
    if (!relative.startsWith(".")) relative = `./${relative}`;
    return relative;
  };
  return (js, containingFile) => {
    if (!js.includes("require(") && !js.includes("import(")) return js;
    const file = ts.createSourceFile(containingFile, js, ts.ScriptTarget.Latest, false, ts.ScriptKind.JS);
    const edits: { start: number; end: number; text: string }[] = [];
    const visit = (node: ts.Node): void => {
      if (ts.isCallExpression(node) && node.arguments.length === 1 && ts.isStringLiteralLike(node.arguments[0])) {
        const callee = node.expression;
        const isLoad = (ts.isIdentifier(callee) && callee.text === "require") || callee.kind === ts.SyntaxKind.ImportKeyword;
        const target = isLoad ? localTarget(node.arguments[0].text, containingFile) : null;
        if (target !== null) edits.push({ start: node.arguments[0].getStart(file), end: node.arguments[0].end, text: JSON.stringify(target) });
      }
      ts.forEachChild(node, visit);
    };
    visit(file);
    let out = js;
    for (const e of edits.reverse()) out = out.slice(0, e.start) + e.text + out.slice(e.end);
    return out;
  };
}

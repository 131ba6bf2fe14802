// The program behind tslab's converter, without TypeScript's builder state. tslab's watch program
// wraps each program update in an EmitAndSemanticDiagnosticsBuilderProgram, whose state maps every
// file's references (lib and @types files included) on each update: ~4 ms of a new cell's ~12 ms.
// tslab uses the builder only for getProgram(), getSourceFile(), emit() of one file and, with
// local-modules.ts, getAllDependencies() of the cell, whose local (non-declaration) files are all it
// looks at. This gives those from a plain Program (created from the previous one, so unchanged
// files are reused as before) and follows imports only through the notebook's own source files.
import type * as ts from "@tslab/typescript-for-tslab";

type CreateProgram = ts.CreateProgram<ts.BuilderProgram>;

/** Answers a compiler host's getSourceFile with a file parsed beforehand, or undefined. */
export type ParsedFileLookup = (fileName: string, wanted: ts.ScriptTarget | ts.CreateSourceFileOptions) => ts.SourceFile | undefined;

/**
 * A createProgram for ts.createWatchCompilerHost whose "builder" is a plain program. Files that
 * `parsed` has (declaration-preparse.ts) are taken from it instead of the host's reading and parsing.
 */
export function lightBuilderFactory(typescript: typeof ts, parsed: ParsedFileLookup = () => undefined): CreateProgram {
  const wrapped = new WeakSet<ts.CompilerHost>();
  return (rootNames, options, host, oldBuilder, configFileParsingDiagnostics, projectReferences) => {
    if (host && !wrapped.has(host)) {
      wrapped.add(host);
      // Not in the watch program's cache, so never given a version: it then takes them as unchanged
      // (undefined === undefined), which they are. Both ways in: a program reusing its predecessor
      // asks by path (the watch program's host has getSourceFileByPath).
      const own = host.getSourceFile;
      host.getSourceFile = (fileName, wanted, onError, fresh) => (!fresh && parsed(fileName, wanted)) || own.call(host, fileName, wanted, onError, fresh);
      const ownByPath = host.getSourceFileByPath;
      if (ownByPath) {
        host.getSourceFileByPath = (fileName, filePath, wanted, onError, fresh) =>
          (!fresh && parsed(fileName, wanted)) || ownByPath.call(host, fileName, filePath, wanted, onError, fresh);
      }
    }
    // getProgramOrUndefined: a runtime member of every builder program (the watch program calls it too).
    const old = (oldBuilder as (ts.BuilderProgram & { getProgramOrUndefined(): ts.Program | undefined }) | undefined)?.getProgramOrUndefined();
    const program = typescript.createProgram({
      rootNames: rootNames ?? old?.getRootFileNames() ?? [],
      options: options ?? old?.getCompilerOptions() ?? {},
      host,
      oldProgram: old,
      configFileParsingDiagnostics,
      projectReferences,
    });
    // The type checker now, as TypeScript's builder makes it: binding fills each file's `locals`,
    // which tslab reads right after the update to learn what a cell declares.
    program.getTypeChecker();
    return lightBuilder(typescript, program);
  };
}

function lightBuilder(typescript: typeof ts, program: ts.Program): ts.EmitAndSemanticDiagnosticsBuilderProgram {
  const builder = {
    getProgram: () => program,
    getProgramOrUndefined: () => program,
    releaseProgram: () => {},
    getState: () => ({}),
    getCompilerOptions: () => program.getCompilerOptions(),
    getSourceFile: (fileName: string) => program.getSourceFile(fileName),
    getSourceFiles: () => program.getSourceFiles(),
    getOptionsDiagnostics: (token?: ts.CancellationToken) => program.getOptionsDiagnostics(token),
    getGlobalDiagnostics: (token?: ts.CancellationToken) => program.getGlobalDiagnostics(token),
    getConfigFileParsingDiagnostics: () => program.getConfigFileParsingDiagnostics(),
    getSyntacticDiagnostics: (file?: ts.SourceFile, token?: ts.CancellationToken) => program.getSyntacticDiagnostics(file, token),
    getDeclarationDiagnostics: (file?: ts.SourceFile, token?: ts.CancellationToken) => program.getDeclarationDiagnostics(file, token),
    getSemanticDiagnostics: (file?: ts.SourceFile, token?: ts.CancellationToken) => program.getSemanticDiagnostics(file, token),
    getSemanticDiagnosticsOfNextAffectedFile: () => undefined,
    emitNextAffectedFile: () => undefined,
    emit: (file?: ts.SourceFile, writeFile?: ts.WriteFileCallback, token?: ts.CancellationToken, emitOnlyDts?: boolean, transformers?: ts.CustomTransformers) =>
      program.emit(file, writeFile, token, emitOnlyDts, transformers),
    emitBuildInfo: () => ({ emitSkipped: true, diagnostics: [] }),
    getCurrentDirectory: () => program.getCurrentDirectory(),
    getAllDependencies: (file: ts.SourceFile) => localDependencies(typescript, program, file),
  };
  return builder as unknown as ts.EmitAndSemanticDiagnosticsBuilderProgram;
}

/**
 * `file` and every non-declaration source file it reaches through imports (static, dynamic,
 * `import x = require()`) and `/// <reference path>`, as file names. Declaration files and packages
 * are not followed: tslab keeps only .ts/.js sources of its own from this list.
 */
function localDependencies(typescript: typeof ts, program: ts.Program, file: ts.SourceFile): string[] {
  const seen = new Set<string>([file.fileName]);
  const queue: ts.SourceFile[] = [file];
  const visit = (fileName: string | undefined) => {
    if (!fileName || seen.has(fileName)) return;
    const next = program.getSourceFile(fileName);
    if (!next || next.isDeclarationFile || program.isSourceFileFromExternalLibrary(next)) return;
    seen.add(next.fileName);
    queue.push(next);
  };
  // Runtime members of both TypeScripts the kernel may run (5.9's program method, 5.0's free function).
  const resolvedOf = program as ts.Program & {
    getResolvedModuleFromModuleSpecifier?(specifier: ts.StringLiteralLike, file: ts.SourceFile): ts.ResolvedModuleWithFailedLookupLocations | undefined;
  };
  const legacy = typescript as typeof ts & { getResolvedModule?(file: ts.SourceFile, name: string, mode: ts.ResolutionMode): ts.ResolvedModuleFull | undefined };
  const resolve = (specifier: ts.StringLiteralLike, from: ts.SourceFile): string | undefined =>
    resolvedOf.getResolvedModuleFromModuleSpecifier
      ? resolvedOf.getResolvedModuleFromModuleSpecifier(specifier, from)?.resolvedModule?.resolvedFileName
      : legacy.getResolvedModule?.(from, specifier.text, typescript.getModeForUsageLocation(from, specifier))?.resolvedFileName;
  while (queue.length > 0) {
    const current = queue.pop()!;
    const imports = (current as ts.SourceFile & { imports?: readonly ts.StringLiteralLike[] }).imports ?? [];
    for (const specifier of imports) visit(resolve(specifier, current));
    for (const ref of current.referencedFiles) visit(typescript.resolveTripleslashReference(ref.fileName, current.fileName));
  }
  return [...seen];
}

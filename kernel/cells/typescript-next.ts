// Stock TypeScript (npm `typescript`, ~5.9) dressed as `@tslab/typescript-for-tslab`, tslab's fork
// of TypeScript 5.0.4, so that tslab's converter compiles cells with a current TypeScript.
//
// The fork adds to TypeScript 5.0.4 (diff of lib/typescript.js against npm typescript@5.0.4):
//   getNullTransformationContext()          -> the bundle's own nullTransformationContext
//   getPreEmitDiagnosticsOfFiles()          -> rebuilt on Program's public diagnostics methods
//   getQuickInfoAtPosition(sf, checker, ..) -> rebuilt on the services' internals (as in 5.9's
//                                              LanguageService.getQuickInfoAtPosition)
//   Completions.getCompletionsAtPositionForTslab() -> Completions.getCompletionsAtPosition(.., undefined)
//   getDefaultTypeRoots(cwd, host)          -> exported by the fork; 5.9 has it internal, without host
//   compiler option disableTopLevelAwait    -> the fork's checker reports a top-level `await` as
//       1308 ("only allowed within async functions"), which tslab drops and answers by running the
//       cell in an async function. Stock TypeScript accepts top-level await in tslab's cell (a module,
//       ESNext, ES2022) without a word, so the diagnostic is made here (and for `for await` and
//       `await using` too, which the fork let through to a SyntaxError at run time).
// And tslab passes noImplicitUseStrict, removed in TypeScript 5.5: without it every cell would
// run in strict mode ("use strict" heads the CommonJS output). Here the option is taken off and the
// directive cut from transpileModule's output, as the fork emitted.
//
// Everything else is stock typescript's own export object (its members read through), ts.sys included.
import * as tsPublic from "typescript";

type Ts = typeof tsPublic;
// The runtime bundle exports much that its .d.ts does not declare (the services' helpers).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const ts: Ts & Record<string, any> = require("typescript");

/** The internals this module needs from the runtime bundle; checked once, at load. */
const INTERNALS = [
  "nullTransformationContext",
  "getTouchingPropertyName",
  "getContainingObjectLiteralElement",
  "getPropertySymbolsFromContextualType",
  "typeToDisplayParts",
  "getContainerNode",
  "createTextSpanFromNode",
  "isLabelName",
  "isTagName",
  "isConstTypeReference",
  "isInComment",
  "isInTopLevelContext",
  "SymbolDisplay",
  "Completions",
] as const;
const missing = INTERNALS.filter((name) => ts[name] === undefined);
if (missing.length > 0) throw new Error(`typescript ${ts.version} lacks what tslab needs: ${missing.join(", ")}`);

/** Diagnostic 1308: tslab treats it, on a top-level `await` of the cell, as "run the cell async". */
const AWAIT_ONLY_IN_ASYNC = 1308;

/**
 * The fork's disableTopLevelAwait: each `await` at the top level of a file (outside any function,
 * class or namespace), reported as 1308 at its keyword, as the fork's checker did.
 */
function topLevelAwaitDiagnostics(file: tsPublic.SourceFile): tsPublic.Diagnostic[] {
  const parseDiagnostics = (file as unknown as { parseDiagnostics?: unknown[] }).parseDiagnostics;
  if (parseDiagnostics && parseDiagnostics.length > 0) return []; // the fork: only for files that parse
  const out: tsPublic.Diagnostic[] = [];
  const report = (node: tsPublic.Node, awaitStart: number) => {
    if (node.flags & ts.NodeFlags.AwaitContext || !ts.isInTopLevelContext(node)) return;
    out.push({
      file,
      start: awaitStart,
      length: "await".length,
      code: AWAIT_ONLY_IN_ASYNC,
      category: ts.DiagnosticCategory.Error,
      messageText: "'await' expressions are only allowed within async functions and at the top levels of modules.",
    });
  };
  const visit = (node: tsPublic.Node): void => {
    if (ts.isFunctionLike(node) || ts.isClassLike(node) || ts.isModuleDeclaration(node)) return; // not top level
    if (ts.isAwaitExpression(node)) report(node, node.getStart(file));
    else if (ts.isForOfStatement(node) && node.awaitModifier) report(node, node.awaitModifier.getStart(file));
    else if (ts.isVariableDeclarationList(node) && (node.flags & ts.NodeFlags.AwaitUsing) === ts.NodeFlags.AwaitUsing) report(node, node.getStart(file));
    ts.forEachChild(node, visit);
  };
  ts.forEachChild(file, visit);
  return out;
}

function withTopLevelAwait(program: tsPublic.Program, files: readonly tsPublic.SourceFile[], diagnostics: readonly tsPublic.Diagnostic[]): readonly tsPublic.Diagnostic[] {
  if (!(program.getCompilerOptions() as { disableTopLevelAwait?: boolean }).disableTopLevelAwait) return diagnostics;
  const added = files.filter((f) => !f.isDeclarationFile).flatMap(topLevelAwaitDiagnostics);
  return added.length === 0 ? diagnostics : ts.sortAndDeduplicateDiagnostics([...diagnostics, ...added]);
}

/** The fork's getPreEmitDiagnosticsOfFiles: ts.getPreEmitDiagnostics for several files at once. */
function getPreEmitDiagnosticsOfFiles(program: tsPublic.Program, sourceFiles: tsPublic.SourceFile[], cancellationToken?: tsPublic.CancellationToken): readonly tsPublic.Diagnostic[] {
  const diagnostics: tsPublic.Diagnostic[] = [
    ...program.getConfigFileParsingDiagnostics(),
    ...program.getOptionsDiagnostics(cancellationToken),
    ...program.getGlobalDiagnostics(cancellationToken),
  ];
  const options = program.getCompilerOptions();
  for (const sourceFile of sourceFiles) {
    diagnostics.push(...program.getSyntacticDiagnostics(sourceFile, cancellationToken));
    diagnostics.push(...program.getSemanticDiagnostics(sourceFile, cancellationToken));
    if (options.declaration || options.composite) diagnostics.push(...program.getDeclarationDiagnostics(sourceFile, cancellationToken));
  }
  return withTopLevelAwait(program, sourceFiles, ts.sortAndDeduplicateDiagnostics(diagnostics));
}

function getPreEmitDiagnostics(program: tsPublic.Program, sourceFile?: tsPublic.SourceFile, cancellationToken?: tsPublic.CancellationToken): readonly tsPublic.Diagnostic[] {
  const diagnostics = ts.getPreEmitDiagnostics(program, sourceFile, cancellationToken);
  return withTopLevelAwait(program, sourceFile ? [sourceFile] : program.getSourceFiles(), diagnostics);
}

/** The fork's free getQuickInfoAtPosition: 5.9's LanguageService.getQuickInfoAtPosition on a given checker. */
function getQuickInfoAtPosition(sourceFile: tsPublic.SourceFile, typeChecker: tsPublic.TypeChecker, cancellationToken: tsPublic.CancellationToken, position: number): tsPublic.QuickInfo | undefined {
  const node: tsPublic.Node = ts.getTouchingPropertyName(sourceFile, position);
  if (node === sourceFile) return undefined;
  const checker = typeChecker as tsPublic.TypeChecker & Record<string, any>;
  const nodeForQuickInfo = getNodeForQuickInfo(node);
  const symbol = getSymbolAtLocationForQuickInfo(nodeForQuickInfo, typeChecker);
  if (!symbol || checker.isUnknownSymbol(symbol)) {
    const type = shouldGetType(sourceFile, nodeForQuickInfo, position) ? typeChecker.getTypeAtLocation(nodeForQuickInfo) : undefined;
    return (
      type && {
        kind: ts.ScriptElementKind.unknown,
        kindModifiers: ts.ScriptElementKindModifier.none,
        textSpan: ts.createTextSpanFromNode(nodeForQuickInfo, sourceFile),
        displayParts: checker.runWithCancellationToken(cancellationToken, (c: tsPublic.TypeChecker) => ts.typeToDisplayParts(c, type, ts.getContainerNode(nodeForQuickInfo))),
        documentation: type.symbol ? type.symbol.getDocumentationComment(typeChecker) : undefined,
        tags: type.symbol ? type.symbol.getJsDocTags(typeChecker) : undefined,
      }
    );
  }
  const { symbolKind, displayParts, documentation, tags } = checker.runWithCancellationToken(cancellationToken, (c: tsPublic.TypeChecker) =>
    ts.SymbolDisplay.getSymbolDisplayPartsDocumentationAndSymbolKind(c, symbol, sourceFile, ts.getContainerNode(nodeForQuickInfo), nodeForQuickInfo),
  );
  return {
    kind: symbolKind,
    kindModifiers: ts.SymbolDisplay.getSymbolModifiers(typeChecker, symbol),
    textSpan: ts.createTextSpanFromNode(nodeForQuickInfo, sourceFile),
    displayParts,
    documentation,
    tags,
  };
}

function getNodeForQuickInfo(node: tsPublic.Node): tsPublic.Node {
  const parent = node.parent;
  if (ts.isNewExpression(parent) && node.pos === parent.pos) return parent.expression;
  if (ts.isNamedTupleMember(parent) && node.pos === parent.pos) return parent;
  if (ts.isMetaProperty(parent) && parent.keywordToken === ts.SyntaxKind.ImportKeyword && parent.name === node) return parent;
  if (ts.isJsxNamespacedName(parent)) return parent;
  return node;
}

function getSymbolAtLocationForQuickInfo(node: tsPublic.Node, checker: tsPublic.TypeChecker): tsPublic.Symbol | undefined {
  const object = ts.getContainingObjectLiteralElement(node);
  if (object) {
    const contextualType = checker.getContextualType(object.parent);
    const properties = contextualType && ts.getPropertySymbolsFromContextualType(object, checker, contextualType, /*unionSymbolOk*/ false);
    if (properties && properties.length === 1) return properties[0];
  }
  return checker.getSymbolAtLocation(node);
}

function shouldGetType(sourceFile: tsPublic.SourceFile, node: tsPublic.Node, position: number): boolean {
  switch (node.kind) {
    case ts.SyntaxKind.Identifier:
      if (node.flags & ts.NodeFlags.JSDoc && !ts.isInJSFile(node) && ((node.parent.kind === ts.SyntaxKind.PropertySignature && (node.parent as tsPublic.PropertySignature).name === node) || ts.findAncestor(node, (n) => n.kind === ts.SyntaxKind.Parameter))) {
        return false;
      }
      return !ts.isLabelName(node) && !ts.isTagName(node) && !ts.isConstTypeReference(node.parent);
    case ts.SyntaxKind.PropertyAccessExpression:
    case ts.SyntaxKind.QualifiedName:
      return !ts.isInComment(sourceFile, position);
    case ts.SyntaxKind.ThisKeyword:
    case ts.SyntaxKind.ThisType:
    case ts.SyntaxKind.SuperKeyword:
    case ts.SyntaxKind.NamedTupleMember:
      return true;
    case ts.SyntaxKind.MetaProperty:
      return (node as tsPublic.MetaProperty).keywordToken === ts.SyntaxKind.ImportKeyword && (node as tsPublic.MetaProperty).name.escapedText === "meta";
    default:
      return false;
  }
}

/** The fork's Completions.getCompletionsAtPositionForTslab: the services' completions, without a format context. */
function getCompletionsAtPositionForTslab(
  host: tsPublic.LanguageServiceHost,
  program: tsPublic.Program,
  log: (message: string) => void,
  sourceFile: tsPublic.SourceFile,
  position: number,
  preferences: tsPublic.UserPreferences,
  triggerCharacter: tsPublic.CompletionsTriggerCharacter | undefined,
  completionKind: tsPublic.CompletionTriggerKind | undefined,
  cancellationToken: tsPublic.CancellationToken,
): tsPublic.CompletionInfo | undefined {
  return ts.Completions.getCompletionsAtPosition(host, program, log, sourceFile, position, preferences, triggerCharacter, completionKind, cancellationToken, /*formatContext*/ undefined);
}

/** TypeScript 5.0's getDefaultTypeRoots: every node_modules/@types above currentDirectory that exists. */
function getDefaultTypeRoots(currentDirectory: string, host: { directoryExists?: (directoryName: string) => boolean }): string[] | undefined {
  const roots: string[] = [];
  let dir = ts.normalizePath(currentDirectory);
  for (;;) {
    const atTypes = ts.combinePaths(dir, "node_modules/@types");
    if (!host.directoryExists || host.directoryExists(atTypes)) roots.push(atTypes);
    const parent = ts.getDirectoryPath(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return roots.length > 0 ? roots : undefined;
}

type WithRemovedOptions = tsPublic.CompilerOptions & { noImplicitUseStrict?: boolean };

/** tslab's option noImplicitUseStrict (removed in TypeScript 5.5) taken off; whether it was set. */
function withoutNoImplicitUseStrict<T extends WithRemovedOptions | undefined>(options: T): { options: T; noImplicitUseStrict: boolean } {
  if (!options || !("noImplicitUseStrict" in options)) return { options, noImplicitUseStrict: false };
  const { noImplicitUseStrict, ...rest } = options;
  return { options: rest as T, noImplicitUseStrict: !!noImplicitUseStrict };
}

function transpileModule(input: string, transpileOptions: tsPublic.TranspileOptions): tsPublic.TranspileOutput {
  const { options, noImplicitUseStrict } = withoutNoImplicitUseStrict(transpileOptions.compilerOptions as WithRemovedOptions | undefined);
  const out = ts.transpileModule(input, { ...transpileOptions, compilerOptions: options });
  if (noImplicitUseStrict) out.outputText = out.outputText.replace(/^"use strict";\r?\n/, "");
  return out;
}

function createWatchCompilerHost(...args: unknown[]): unknown {
  // The form tslab uses: (rootFiles, options, system, ...). ES module output has no "use strict" to cut.
  if (Array.isArray(args[0])) args[1] = withoutNoImplicitUseStrict(args[1] as WithRemovedOptions).options;
  return (ts.createWatchCompilerHost as (...a: unknown[]) => unknown)(...args);
}

const Completions = Object.create(ts.Completions, {
  getCompletionsAtPositionForTslab: { value: getCompletionsAtPositionForTslab, enumerable: true },
});

const additions: Record<string, unknown> = {
  getNullTransformationContext: () => ts.nullTransformationContext,
  getPreEmitDiagnosticsOfFiles,
  getPreEmitDiagnostics,
  getQuickInfoAtPosition,
  getDefaultTypeRoots,
  transpileModule,
  createWatchCompilerHost,
  Completions,
};

/** What `require("@tslab/typescript-for-tslab")` gets: stock typescript's exports (its getters: ts.sys is
 * typescript's own) with the fork's additions. Its export properties cannot be redefined: copied, less those. */
const descriptors = Object.getOwnPropertyDescriptors(ts) as Record<string, PropertyDescriptor>;
for (const name of Object.keys(additions)) delete descriptors[name];
const shim: Record<string, unknown> = Object.defineProperties({}, descriptors);
for (const [name, value] of Object.entries(additions)) {
  Object.defineProperty(shim, name, { value, enumerable: true, configurable: true, writable: true });
}

export = shim as unknown as Ts;

// Parses the declaration files the cells' first program will read (the lib files, the @types
// packages and what they reference), one file per event-loop turn, while the kernel waits for its
// first cell. Making the language service is one synchronous step, ~0.8 s on 2 cores, most of it
// parsing these ~80 files; with them parsed beforehand it is ~0.3 s, short enough to run in the
// background too (kernel/main.ts), and the first cell waits for neither.
//
// The program asks its compiler host for each file; light-builder.ts answers from here when the file
// was parsed exactly as the program would parse it (same target, module format, JSDoc mode), and
// leaves it to the host otherwise. Files found here but never asked for cost only the parse.
import path from "path";
import type * as ts from "@tslab/typescript-for-tslab";

export class ParsedDeclarations {
  private readonly files = new Map<string, ts.SourceFile>();
  private hits = 0;
  private misses = 0;

  constructor(private readonly typescript: typeof ts) {}

  /**
   * Parses what a program with `options`, made in `cwd`, reads besides the notebook's own files,
   * one file per `turn()`, until `stop()`.
   */
  async parseFor(options: ts.CompilerOptions, cwd: string, turn: () => Promise<void>, stop: () => boolean = () => false): Promise<void> {
    const t = this.typescript;
    const host = t.sys;
    const libDir = path.dirname(t.getDefaultLibFilePath(options));
    const queue: string[] = [];
    const seen = new Set<string>();
    const add = (file: string | undefined) => {
      if (!file || !file.endsWith(".d.ts")) return;
      const normalized = t.sys.resolvePath(file).split(path.sep).join("/");
      if (!seen.has(normalized)) {
        seen.add(normalized);
        queue.push(normalized);
      }
    };
    const libFile = (name: string) => path.join(libDir, name.startsWith("lib.") ? name : `lib.${name.toLowerCase()}.d.ts`);
    for (const lib of options.lib ?? [path.basename(t.getDefaultLibFilePath(options))]) add(libFile(lib));
    const typeHost = { ...host, getCurrentDirectory: () => cwd };
    const inferredFrom = path.join(cwd, "__inferred type names__.ts");
    for (const name of options.types ?? t.getAutomaticTypeDirectiveNames(options, typeHost)) {
      add(t.resolveTypeReferenceDirective(name, inferredFrom, options, typeHost).resolvedTypeReferenceDirective?.resolvedFileName);
    }
    const target = options.target ?? t.ScriptTarget.ES5;
    while (queue.length > 0 && !stop()) {
      const file = queue.shift()!;
      const text = host.readFile(file);
      if (text === undefined) continue;
      const sourceFile = t.createSourceFile(file, text, {
        languageVersion: target,
        impliedNodeFormat: t.getImpliedNodeFormatForFile(file as ts.Path, undefined, typeHost, options),
      });
      this.files.set(file, sourceFile);
      for (const ref of sourceFile.referencedFiles) add(path.resolve(path.dirname(file), ref.fileName));
      for (const ref of sourceFile.libReferenceDirectives) add(libFile(ref.fileName));
      for (const ref of sourceFile.typeReferenceDirectives) {
        add(t.resolveTypeReferenceDirective(ref.fileName, file, options, typeHost).resolvedTypeReferenceDirective?.resolvedFileName);
      }
      for (const imported of t.preProcessFile(text, true, true).importedFiles) {
        add(t.resolveModuleName(imported.fileName, file, options, typeHost).resolvedModule?.resolvedFileName);
      }
      await turn();
    }
  }

  /** The file parsed beforehand, when it was parsed as `requested` asks; else undefined. */
  lookup(fileName: string, requested: ts.ScriptTarget | ts.CreateSourceFileOptions): ts.SourceFile | undefined {
    const file = this.files.get(fileName);
    if (!file) return undefined;
    // jsDocParsingMode: TypeScript 5.3 and later (not in the 5.0 fork's types).
    const wanted: ts.CreateSourceFileOptions & { jsDocParsingMode?: number } = typeof requested === "object" ? requested : { languageVersion: requested };
    const same =
      file.languageVersion === wanted.languageVersion &&
      file.impliedNodeFormat === wanted.impliedNodeFormat &&
      (wanted.jsDocParsingMode ?? 0) === 0; // parsed with the default, JSDocParsingMode.ParseAll
    if (same) this.hits++;
    else this.misses++;
    return same ? file : undefined;
  }

  /** How many files were given to a program, and how many were asked for but parsed otherwise. */
  get stats(): { parsed: number; hits: number; misses: number } {
    return { parsed: this.files.size, hits: this.hits, misses: this.misses };
  }
}

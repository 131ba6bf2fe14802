// Declaration files parsed ahead (kernel/cells/declaration-preparse.ts) must be the ones a program
// reads, parsed as it would parse them: a program taking them finds the same errors as one that
// parses everything itself, and a file parsed for another target is not taken.
import * as fs from "fs";
import * as os from "os";
import path from "path";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ParsedDeclarations } from "../../kernel/cells/declaration-preparse";

const REPO = path.join(__dirname, "..", "..");
let dir: string;
let cell: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "tsl-preparse-"));
  cell = path.join(dir, "cell.ts").split(path.sep).join("/");
  // Uses lib (Array, Promise, Map) and @types/node (process, Buffer), with one error to find.
  fs.writeFileSync(cell, 'const m = new Map<string, Buffer>(); m.set("a", Buffer.from("x"));\nconst p: Promise<number> = Promise.resolve(process.pid);\nconst wrong: string = [1, 2].length;\nexport { p, wrong };\n');
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const OPTIONS: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2022,
  lib: ["lib.es2022.d.ts"],
  module: ts.ModuleKind.ESNext,
  moduleResolution: ts.ModuleResolutionKind.Node10,
  typeRoots: [path.join(REPO, "node_modules", "@types")],
  types: ["node"],
  skipLibCheck: true,
  noEmit: true,
};

function program(options: ts.CompilerOptions, parsed?: ParsedDeclarations): ts.Program {
  const host = ts.createCompilerHost(options);
  if (parsed) {
    const own = host.getSourceFile;
    host.getSourceFile = (fileName, wanted, onError, fresh) => parsed.lookup(fileName, wanted) ?? own.call(host, fileName, wanted, onError, fresh);
  }
  return ts.createProgram([cell], options, host);
}

const messages = (p: ts.Program) => ts.getPreEmitDiagnostics(p).map((d) => `${d.file?.fileName ?? ""}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`);

describe("ParsedDeclarations", () => {
  it("parses the lib and @types files a program reads; the program takes all of them and finds the same errors", async () => {
    const parsed = new ParsedDeclarations(ts as never);
    await parsed.parseFor(OPTIONS, dir, async () => undefined);
    const withParsed = program(OPTIONS, parsed);
    const declarationFiles = withParsed.getSourceFiles().filter((f) => f.isDeclarationFile);
    expect(parsed.stats.misses).toBe(0);
    // Every declaration file of the program is the very object parsed ahead.
    const notTaken = declarationFiles.filter((f) => parsed.lookup(f.fileName, { languageVersion: f.languageVersion, impliedNodeFormat: f.impliedNodeFormat }) !== f);
    expect(notTaken.map((f) => f.fileName)).toEqual([]);
    expect(declarationFiles.length).toBeGreaterThan(50);
    const errors = messages(withParsed);
    expect(errors).toEqual(messages(program(OPTIONS)));
    expect(errors.join("\n")).toMatch(/Type 'number' is not assignable to type 'string'/);
  });

  it("does not give a file parsed for one target to a program of another", async () => {
    const parsed = new ParsedDeclarations(ts as never);
    await parsed.parseFor(OPTIONS, dir, async () => undefined);
    const older = { ...OPTIONS, target: ts.ScriptTarget.ES2017 };
    const p = program(older, parsed);
    expect(parsed.stats.hits).toBe(0);
    expect(parsed.stats.misses).toBeGreaterThan(0);
    expect(messages(p)).toEqual(messages(program(older)));
  });

  it("stops when asked, between files", async () => {
    const parsed = new ParsedDeclarations(ts as never);
    let turns = 0;
    await parsed.parseFor(OPTIONS, dir, async () => void turns++, () => turns >= 3);
    expect(parsed.stats.parsed).toBe(3);
  });
});

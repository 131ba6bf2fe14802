import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ts from 'typescript';
import { afterEach, describe, expect, it } from 'vitest';
import { lightBuilderFactory } from '../../kernel/cells/light-builder';
import { readNotebookTsconfig } from '../../kernel/cells/notebook-tsconfig';

// Which tsconfig.json options reach cells (kernel/cells/notebook-tsconfig.ts), and the plain-program
// "builder" behind tslab's converter (kernel/cells/light-builder.ts). End to end: test/e2e/notebook-tsconfig.
let dir: string;
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function project(files: Record<string, string>): string {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsl-unit-tsconfig-'));
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

describe('readNotebookTsconfig', () => {
  it('takes checking, target, lib, paths and JSX options; drops build layout silently; names the rest', () => {
    const root = project({
      'base.json': JSON.stringify({ compilerOptions: { noImplicitReturns: true } }),
      'tsconfig.json': JSON.stringify({
        extends: './base.json',
        compilerOptions: { strict: true, target: 'ES2022', module: 'commonjs', outDir: 'dist', sourceMap: true, paths: { '@x/*': ['x/*'] }, jsx: 'react-jsx', plugins: [] },
      }),
      'notebooks/deep/.keep': '',
    });
    const got = readNotebookTsconfig(path.join(root, 'notebooks', 'deep'));
    expect(got.file).toBe(path.join(root, 'tsconfig.json'));
    expect(got.options).toMatchObject({ strict: true, noImplicitReturns: true, target: ts.ScriptTarget.ES2022, jsx: ts.JsxEmit.ReactJSX, paths: { '@x/*': ['x/*'] } });
    expect(got.options.lib).toEqual(['lib.es2022.d.ts']); // the target's, without the DOM
    for (const dropped of ['module', 'outDir', 'sourceMap', 'plugins']) expect(got.options).not.toHaveProperty(dropped);
    expect(got.problems).toEqual([expect.stringMatching(/ignored for cells: plugins\. /)]);
  });

  it('with no tsconfig.json up the tree: nothing, and nothing to say', () => {
    const root = project({ '.keep': '' });
    // (a tsconfig.json in / or /tmp would be found, as tsc finds it)
    const got = readNotebookTsconfig(root);
    if (got.file === null) expect(got).toEqual({ file: null, options: {}, problems: [] });
    else expect(path.dirname(got.file).length).toBeLessThan(root.length);
  });

  it('refuses what cells cannot run: targets before ES2017, JSX left in the output; an unreadable file keeps the defaults', () => {
    let root = project({ 'tsconfig.json': JSON.stringify({ compilerOptions: { target: 'ES5', jsx: 'preserve' } }) });
    let got = readNotebookTsconfig(root);
    expect(got.options).not.toHaveProperty('target');
    expect(got.options).not.toHaveProperty('jsx');
    expect(got.problems.join('\n')).toMatch(/"target" ES5 is not used for cells[\s\S]*"jsx" preserve is not used for cells/);
    fs.rmSync(root, { recursive: true });
    root = project({ 'tsconfig.json': '{ "compilerOptions": ' });
    got = readNotebookTsconfig(root);
    expect(got.options).toEqual({});
    expect(got.problems).toEqual([expect.stringMatching(/could not be read, so cells use the kernel's defaults: .+ Fix the file and restart the kernel\.$/)]);
  });
});

describe('the plain-program builder', () => {
  it("a file's dependencies are the notebook's own sources it reaches (imports, dynamic imports, references), not declaration files or packages", () => {
    const root = project({
      'cell.ts': `import { a } from "./a";\nimport * as fs from "fs";\nimport type { T } from "./types";\nconst later = import("./lazy");\nexport const x: T = a;\n`,
      'a.ts': `/// <reference path="./ref.ts" />\nimport { b } from "./b";\nexport const a = b;\n`,
      'b.ts': `import { a } from "./a";\nexport const b = 1;\nexport const again = () => a;\n`, // a cycle back to a.ts
      'ref.ts': `const referenced = 1;\n`,
      'lazy.ts': `export const lazy = 1;\n`,
      'types.d.ts': `export type T = number;\n`,
      'unused.ts': `export const unused = 1;\n`,
    });
    const files = ['cell.ts', 'unused.ts'].map((f) => path.join(root, f));
    const options: ts.CompilerOptions = { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, types: [], noEmit: true };
    const builder = lightBuilderFactory(ts as never)(files, options, ts.createCompilerHost(options), undefined) as unknown as ts.BuilderProgram;
    const cell = builder.getSourceFile(files[0])!;
    const deps = builder.getAllDependencies(cell).map((f) => path.relative(root, f)).sort();
    expect(deps).toEqual(['a.ts', 'b.ts', 'cell.ts', 'lazy.ts', 'ref.ts']);
    expect(builder.getProgram().getSourceFile(files[1])).toBeDefined(); // in the program, not a dependency
  });
});

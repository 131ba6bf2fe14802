/**
 * The notebook's own TypeScript setup (issue 14, item 5), through nbclient (nbconvert --execute),
 * which starts the kernel in the notebook's folder as JupyterLab does:
 * - a tsconfig.json beside the notebook or up the tree sets `strict`, `target`, `paths`, `jsx`;
 * - local .ts/.tsx modules import from cells, by relative name or through `paths`, in %%launch too;
 * - a broken tsconfig.json or one asking for what cells cannot do is said in the first cell, and
 *   the cells still run.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeNotebook, multiline, nbconvertExecute, normalizeOutputs, type NotebookJson } from '../helpers/jupyter-server';
import { makeTempDir, removeDir } from '../helpers/kernelspec-fixture';
import { KERNEL_NAME, useKernelEnv } from './setup';

const kernelEnv = useKernelEnv();
let project: string;

afterEach(() => {
  if (project) removeDir(project);
});

/** Writes `files` (path → text) under a fresh project folder. */
function writeProject(files: Record<string, string>): string {
  project = makeTempDir('tsl-tsconfig-');
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(project, name)), { recursive: true });
    fs.writeFileSync(path.join(project, name), text);
  }
  return project;
}

/** Runs `cells` as a notebook in `dir` and returns each cell's outputs as text lines. */
async function runNotebook(dir: string, cells: string[]): Promise<string[]> {
  const nbPath = path.join(dir, 'notebook.ipynb');
  fs.writeFileSync(nbPath, JSON.stringify(makeNotebook(cells, KERNEL_NAME, 'typescript')));
  const r = await nbconvertExecute({
    notebook: nbPath,
    kernelName: KERNEL_NAME,
    jupyterPath: [kernelEnv().spec.jupyterDir],
    timeoutS: 60,
    allowErrors: true,
    outputPath: path.join(dir, 'executed.ipynb'),
    env: kernelEnv().childEnv,
  });
  expect(r.code, r.stderr).toBe(0);
  return (r.executed as NotebookJson).cells.map((c) =>
    normalizeOutputs(c.outputs)
      .map((o) => {
        if (o.output_type === 'stream') return `${o.name as string}: ${multiline(o.text)}`;
        if (o.output_type === 'error') return `error: ${o.ename as string}: ${o.evalue as string}`;
        const data = o.data as Record<string, unknown>;
        return `result: ${multiline(data['text/plain'])}`;
      })
      .join(''),
  );
}

const JSX_RUNTIME_TYPES = `export namespace JSX {
  interface IntrinsicElements { [tag: string]: Record<string, unknown> }
  type Element = string;
}
export function jsx(tag: string, props: { children?: unknown }): string;
export const jsxs: typeof jsx;
`;
// A tiny JSX runtime as a local package: JSX elements render to strings.
const JSX_RUNTIME = `const render = (tag, props) => '<' + tag + '>' + [].concat(props.children ?? []).join('') + '</' + tag + '>';
exports.jsx = render;
exports.jsxs = render;
`;

describe("the notebook's tsconfig.json", () => {
  it('sets strict, target and paths for cells; local .ts and .tsx modules import, by alias too, and in %%launch ranks', async () => {
    const dir = writeProject({
      'tsconfig.json': JSON.stringify({
        // module/outDir/sourceMap are a project's build layout: not for cells, and not worth a warning.
        compilerOptions: {
          strict: true, target: 'ES2022', module: 'commonjs', outDir: 'out', sourceMap: true,
          baseUrl: '.', paths: { '@lib/*': ['src/lib/*'] }, jsx: 'react-jsx', jsxImportSource: 'mini',
        },
      }),
      'src/lib/words.ts': `import { shout } from "@lib/shout";\nexport const greet = (name: string): string => shout("hello " + name);\n`,
      'src/lib/shout.ts': `export const shout = (s: string): string => s.toUpperCase() + "!";\n`,
      'src/view.tsx': `export const view = (name: string) => <p>hi <b>{name}</b></p>;\n`,
      'answer.ts': `export const answer: number = 41;\n`,
      'node_modules/mini/package.json': JSON.stringify({ name: 'mini', version: '1.0.0' }),
      'node_modules/mini/jsx-runtime.js': JSX_RUNTIME,
      'node_modules/mini/jsx-runtime.d.ts': JSX_RUNTIME_TYPES,
    });
    const out = await runNotebook(dir, [
      'function id(x) { return x }', // strict: noImplicitAny
      'let s: string = null', // strict: strictNullChecks
      '[10, 20, 30].at(-1)', // target ES2022: lib.es2022 has Array.prototype.at
      "import { greet } from '@lib/words'\ngreet('ts')", // paths, and a path alias inside the module
      "import { answer } from './answer'\nanswer + 1",
      "import { view } from './src/view'\nview('x')", // jsx: react-jsx with jsxImportSource
      "%%launch -n 2\nimport { greet } from '@lib/words'\nconsole.log(greet('rank ' + process.env.RANK))",
    ]);
    expect(out[0]).toContain("error: CompileError: line 1, column 13: Parameter 'x' implicitly has an 'any' type.");
    expect(out[0]).not.toContain('tsconfig.json'); // nothing to say about this one
    expect(out[1]).toContain("Type 'null' is not assignable to type 'string'");
    expect(out[2]).toBe('result: 30');
    expect(out[3]).toBe('result: HELLO TS!');
    expect(out[4]).toBe('result: 42');
    expect(out[5]).toBe('result: <p>hi <b>x</b></p>');
    expect(out[6]).toContain('[rank0]: HELLO RANK 0!');
    expect(out[6]).toContain('[rank1]: HELLO RANK 1!');
  }, 150_000);

  it('without one, cells keep tslab\'s defaults (not strict), and a tsconfig.json up the tree is found', async () => {
    const dir = writeProject({ 'nb/.keep': '' });
    const loose = await runNotebook(path.join(dir, 'nb'), ['function id(x) { return x }\nid(1)']);
    expect(loose[0]).toBe('result: 1');
    fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { noImplicitAny: true } }));
    const strict = await runNotebook(path.join(dir, 'nb'), ['function id(x) { return x }\nid(1)']);
    expect(strict[0]).toContain("Parameter 'x' implicitly has an 'any' type.");
  }, 150_000);

  it('a broken tsconfig.json, an old target and options cells cannot take are said once in the first cell, and the cells still run', async () => {
    const broken = writeProject({ 'tsconfig.json': '{ "compilerOptions": { "strict": true, } oops' });
    const out = await runNotebook(broken, ['1 + 1', '2 + 2']);
    expect(out[0]).toMatch(/^stderr: tsconfig\.json \(.*tsconfig\.json\) could not be read, so cells use the kernel's defaults: .+ Fix the file and restart the kernel\.\nresult: 2$/);
    expect(out[1]).toBe('result: 4');
    removeDir(broken);

    const odd = writeProject({
      'tsconfig.json': JSON.stringify({ compilerOptions: { target: 'ES5', plugins: [{ name: 'x' }], noImplicitAny: 'yes', jsx: 'preserve', types: ['not-installed'] } }),
    });
    const [first, second] = await runNotebook(odd, ['[1, 2].includes(2)', 'async function f() { await 0 }\n"ok"']);
    expect(first).toContain('"target" ES5 is not used for cells: they need ES2017 or later');
    expect(first).toContain('ignored for cells: plugins.');
    expect(first).toContain("noImplicitAny"); // the invalid value, in TypeScript's own words
    expect(first).toContain('"jsx" preserve is not used for cells');
    // An error of the options themselves names no file: tslab would drop it, the kernel says it.
    expect(first).toContain("Cannot find type definition file for 'not-installed'");
    expect(first).toMatch(/result: true$/);
    expect(second).toBe('result: ok');
  }, 150_000);

  it("a type error inside a local .ts or .tsx module fails the importing cell and names the module's file and line", async () => {
    const dir = writeProject({
      'tsconfig.json': JSON.stringify({ compilerOptions: { jsx: 'react-jsx', jsxImportSource: 'mini' } }),
      'lib/bad.ts': `export const n: number = 1;\nexport const s: string = n;\n`,
      'lib/bad-view.tsx': `export const v = <p>{undefinedName}</p>;\n`,
      'node_modules/mini/package.json': JSON.stringify({ name: 'mini', version: '1.0.0' }),
      'node_modules/mini/jsx-runtime.js': JSX_RUNTIME,
      'node_modules/mini/jsx-runtime.d.ts': JSX_RUNTIME_TYPES,
    });
    const out = await runNotebook(dir, ["import { s } from './lib/bad'\ns", "import { v } from './lib/bad-view'\nv", '"still alive"']);
    expect(out[0]).toBe("error: CompileError: lib/bad.ts line 2, column 14: Type 'number' is not assignable to type 'string'.");
    expect(out[1]).toBe("error: CompileError: lib/bad-view.tsx line 1, column 22: Cannot find name 'undefinedName'. Did you mean 'undefined'?");
    expect(out[2]).toBe('result: still alive');
  }, 150_000);

  it("tslab's module cells (/** @module name */, with @jsx) import from later cells; one that does not type-check fails", async () => {
    const dir = writeProject({
      'tsconfig.json': JSON.stringify({ compilerOptions: { jsx: 'react-jsx', jsxImportSource: 'mini' } }),
      'node_modules/mini/package.json': JSON.stringify({ name: 'mini', version: '1.0.0' }),
      'node_modules/mini/jsx-runtime.js': JSX_RUNTIME,
      'node_modules/mini/jsx-runtime.d.ts': JSX_RUNTIME_TYPES,
    });
    const out = await runNotebook(dir, [
      "/** @module shapes */\nexport const square = (n: number): number => n * n;",
      "/** @module card @jsx */\nexport const card = (title: string) => <div>{title}</div>;",
      "import { square } from './shapes'\nimport { card } from './card'\ncard(String(square(7)))",
      "/** @module broken */\nexport const n: number = 'x';",
    ]);
    expect(out[0]).toBe('');
    expect(out[1]).toBe('');
    expect(out[2]).toBe('result: <div>49</div>');
    expect(out[3]).toBe("error: CompileError: broken.ts line 2, column 14: Type 'string' is not assignable to type 'number'.");
  }, 150_000);
});

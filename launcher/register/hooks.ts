// The loader hooks behind `tslaunch/register` (they run on Node's loader thread): `.ts` and `.mts`
// files load as ES modules transpiled by TypeScript; `./x.js` finds `./x.ts` when only that exists
// (TypeScript's own import convention).
import { existsSync, readFileSync } from "fs";
import { fileURLToPath } from "url";
import type * as TypeScript from "typescript";

const TS_FILE = /\.(ts|mts)$/;

interface ResolveContext {
  parentURL?: string;
}
type NextResolve = (specifier: string, context: ResolveContext) => Promise<{ url: string; format?: string }>;
type NextLoad = (url: string, context: object) => Promise<{ format: string; source?: string | Buffer }>;

export async function resolve(specifier: string, context: ResolveContext, nextResolve: NextResolve): Promise<{ url: string; format?: string }> {
  try {
    return await nextResolve(specifier, context);
  } catch (err) {
    const ts = specifier.replace(/\.(m?)js$/, ".$1ts");
    if (ts !== specifier && context.parentURL?.startsWith("file:") && (specifier.startsWith(".") || specifier.startsWith("/"))) {
      const candidate = new URL(ts, context.parentURL);
      if (existsSync(fileURLToPath(candidate))) return { url: candidate.href, format: "module" };
    }
    throw err;
  }
}

let compiler: typeof TypeScript | undefined;

export async function load(url: string, context: object, nextLoad: NextLoad): Promise<{ format: string; source?: string | Buffer; shortCircuit?: boolean }> {
  if (!url.startsWith("file:") || !TS_FILE.test(new URL(url).pathname)) return nextLoad(url, context);
  compiler ??= require("typescript") as typeof TypeScript;
  const file = fileURLToPath(url);
  const { outputText } = compiler.transpileModule(readFileSync(file, "utf8"), {
    fileName: file,
    compilerOptions: { module: compiler.ModuleKind.ESNext, target: compiler.ScriptTarget.ES2022, esModuleInterop: true, inlineSourceMap: true },
  });
  return { format: "module", source: outputText, shortCircuit: true };
}

// `tslaunch run script.ts`: the script and the local TypeScript files next to it are transpiled once
// by the agent (no type check, like tsx), so workers never load the TypeScript compiler. Workers find
// the compiled files through the replay's require hook (the payload's side outputs).
import { readdirSync, readFileSync, statSync } from "fs";
import path from "path";
import type * as TypeScript from "typescript";
import type { LaunchPayload } from "../contract";

const MAX_FILES = 2000;

function localTypeScriptFiles(dir: string, out: string[] = []): string[] {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (out.length >= MAX_FILES) break;
    if (entry.name === "node_modules" || entry.name.startsWith(".")) continue;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) localTypeScriptFiles(full, out);
    else if (/\.(ts|mts|cts)$/.test(entry.name) && !entry.name.endsWith(".d.ts")) out.push(full);
  }
  return out;
}

function transpile(file: string): string {
  // Loaded here, not at the top: every worker that requires "tslaunch" loads this module, and the
  // compiler alone takes ~250 ms to load; only `tslaunch run` needs it, once, in the agent.
  const ts = require("typescript") as typeof TypeScript;
  return ts.transpileModule(readFileSync(file, "utf8"), {
    fileName: file,
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true, inlineSourceMap: false },
  }).outputText;
}

export function scriptPayload(script: string, args: string[], cwd = process.cwd()): LaunchPayload {
  const file = path.resolve(cwd, script);
  if (!statSync(file, { throwIfNoEntry: false })?.isFile()) {
    throw new Error(`no such script: ${file}. Usage: tslaunch run [flags] script.ts [args...]`);
  }
  const isTs = /\.(ts|mts|cts)$/.test(file);
  const sideOutputs = isTs
    ? localTypeScriptFiles(path.dirname(file)).map((f) => ({ path: f.replace(/\.(ts|mts|cts)$/, ".js"), data: transpile(f) }))
    : [];
  const entry = isTs ? file.replace(/\.(ts|mts|cts)$/, ".js") : file;
  // Relative to cwd so the require hook looks the compiled file up; process.argv as `node script` sets it.
  const request = "./" + path.relative(cwd, entry).split(path.sep).join("/");
  const js = [
    `process.argv = [process.argv[0], ${JSON.stringify(file)}, ...${JSON.stringify(args)}];`,
    `require(${JSON.stringify(request)});`,
  ].join("\n");
  return {
    cwd,
    replay: [],
    sideOutputs,
    body: { executionCount: 0, js, async: false, jsLineToCellLine: [] },
  };
}

/**
 * Kernelspec fixtures for end-to-end tests.
 *
 * A "jupyter path dir" is a directory D such that kernelspecs live in D/kernels/<name>/kernel.json;
 * put D into JUPYTER_PATH (startJupyterServer's `jupyterPath`). `tslaunch install --prefix P`
 * writes P/share/jupyter/kernels/tslaunch/kernel.json, so its jupyter path dir is
 * `prefixJupyterDir(P)`.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface KernelSpecOptions {
  /** argv; must contain "{connection_file}". */
  argv: string[];
  displayName: string;
  language: string;
  env?: Record<string, string>;
  /** 'signal' (default in Jupyter) or 'message'. */
  interruptMode?: 'signal' | 'message';
  metadata?: Record<string, unknown>;
}

export interface KernelSpecJson {
  argv: string[];
  display_name: string;
  language: string;
  env?: Record<string, string>;
  interrupt_mode?: 'signal' | 'message';
  metadata?: Record<string, unknown>;
}

/**
 * Writes `<dir>/kernels/<name>/kernel.json` (creating directories) and returns `dir`, the entry
 * to put into JUPYTER_PATH. Kernel names are lower-cased by Jupyter; keep them [a-z0-9._-].
 */
export function writeKernelSpec(dir: string, name: string, opts: KernelSpecOptions): string {
  if (!/^[a-z0-9._-]+$/.test(name)) {
    throw new Error(`writeKernelSpec: kernel name ${JSON.stringify(name)} must match [a-z0-9._-]+`);
  }
  if (!opts.argv.some((a) => a.includes('{connection_file}'))) {
    throw new Error('writeKernelSpec: argv must contain "{connection_file}"');
  }
  const specDir = path.join(dir, 'kernels', name);
  fs.mkdirSync(specDir, { recursive: true });
  const spec: KernelSpecJson = {
    argv: opts.argv,
    display_name: opts.displayName,
    language: opts.language,
  };
  if (opts.env) spec.env = opts.env;
  if (opts.interruptMode) spec.interrupt_mode = opts.interruptMode;
  if (opts.metadata) spec.metadata = opts.metadata;
  fs.writeFileSync(path.join(specDir, 'kernel.json'), JSON.stringify(spec, null, 1) + '\n');
  return dir;
}

/** `<prefix>/share/jupyter`: the jupyter path dir for a `tslaunch install --prefix <prefix>`. */
export function prefixJupyterDir(prefix: string): string {
  return path.join(prefix, 'share', 'jupyter');
}

/** Reads `<jupyterDir>/kernels/<name>/kernel.json`. */
export function readKernelSpec(jupyterDir: string, name: string): KernelSpecJson {
  return JSON.parse(fs.readFileSync(path.join(jupyterDir, 'kernels', name, 'kernel.json'), 'utf8')) as KernelSpecJson;
}

/** A random hex string, for kernel names, marker values and tokens. */
export function randomId(bytes = 6): string {
  return crypto.randomBytes(bytes).toString('hex');
}

/**
 * A fresh temp dir. The default prefix deliberately does NOT start with "tslaunch-", so test
 * fixtures never show up as tslaunch's own leftovers (see leftovers.ts TSLAUNCH_TEMP_PREFIX).
 */
export function makeTempDir(prefix = 'tsl-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 100 });
}

/** A kernelspec for Debian's ipykernel, carrying `marker` in its env. */
export function ipykernelSpec(marker?: { name: string; value: string }, displayName = 'Python 3 (test)'): KernelSpecOptions {
  return {
    argv: ['/usr/bin/python3', '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
    displayName,
    language: 'python',
    env: marker ? { [marker.name]: marker.value } : undefined,
  };
}

/**
 * End-to-end harness: a real Jupyter server (Debian's jupyter_server 1.23 via /usr/bin/python3),
 * driven from Node with @jupyterlab/services, plus nbconvert and jupyter_kernel_test runners.
 *
 * Always /usr/bin/python3: the `python3` first on PATH may be a pyenv without Debian's packages.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { KernelManager, KernelMessage, ServerConnection, type Kernel } from '@jupyterlab/services';
import WebSocket from 'ws';
import { freePort } from './free-port';
import { makeTempDir, removeDir } from './kernelspec-fixture';
import { descendantsOf, isAlive, killPids, processesWithEnv, sleep, waitUntilGone } from './leftovers';

export const SYSTEM_PYTHON = '/usr/bin/python3';

/** Env var set (with a per-server random value) on the server, inherited by its kernels and their children. */
export const SERVER_MARKER_ENV = 'TSLAUNCH_HARNESS_SERVER';

/** Variables from the test runner's env that would make the child Jupyter processes look elsewhere. */
const SCRUBBED_ENV = [
  'JUPYTER_PATH',
  'JUPYTER_CONFIG_DIR',
  'JUPYTER_CONFIG_PATH',
  'JUPYTER_DATA_DIR',
  'JUPYTER_RUNTIME_DIR',
  'JUPYTER_PREFER_ENV_PATH',
  'JUPYTER_TOKEN',
  'IPYTHONDIR',
  'PYTHONPATH',
  'PYTHONHOME',
  'VIRTUAL_ENV',
];

/** Temp dirs for Jupyter's config/data/runtime (and IPython's) so nothing touches ~ or leaks between runs. */
interface IsolatedDirs {
  root: string;
  env: Record<string, string>;
}

function isolatedJupyterDirs(prefix: string): IsolatedDirs {
  const root = makeTempDir(prefix);
  const dirs = {
    JUPYTER_CONFIG_DIR: path.join(root, 'config'),
    JUPYTER_DATA_DIR: path.join(root, 'data'),
    JUPYTER_RUNTIME_DIR: path.join(root, 'runtime'),
    IPYTHONDIR: path.join(root, 'ipython'),
  };
  for (const d of Object.values(dirs)) fs.mkdirSync(d, { recursive: true });
  return { root, env: dirs };
}

function childEnv(jupyterPath: string[], isolated: IsolatedDirs, extra?: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of SCRUBBED_ENV) delete env[k];
  Object.assign(env, isolated.env);
  if (jupyterPath.length > 0) env.JUPYTER_PATH = jupyterPath.map((p) => path.resolve(p)).join(path.delimiter);
  env.PYTHONUNBUFFERED = '1';
  env.PYDEVD_DISABLE_FILE_VALIDATION = '1'; // silences a debugpy warning ipykernel prints on stderr
  for (const [k, v] of Object.entries(extra ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/** Keeps the last `max` characters written to it. */
class TailBuffer {
  private chunks: string[] = [];
  private size = 0;
  constructor(private readonly max = 64 * 1024) {}
  push(s: string): void {
    this.chunks.push(s);
    this.size += s.length;
    while (this.size > this.max && this.chunks.length > 1) this.size -= this.chunks.shift()!.length;
  }
  toString(): string {
    const s = this.chunks.join('');
    return s.length > this.max ? s.slice(s.length - this.max) : s;
  }
}

// Servers still running when the test process exits get SIGKILLed (best effort; sync only).
const liveServers = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const cp of liveServers) {
      try {
        if (cp.pid) process.kill(-cp.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// The server

export interface StartJupyterServerOptions {
  /** JUPYTER_PATH entries: dirs D with D/kernels/<name>/kernel.json (e.g. `<prefix>/share/jupyter`). */
  jupyterPath: string[];
  /** cwd of the server process; also the root_dir (where kernels start) unless rootDir is given. */
  cwd?: string;
  /** --ServerApp.root_dir; default cwd, else a fresh temp dir. */
  rootDir?: string;
  /** Extra env for the server (inherited by kernels). undefined values delete a variable. */
  env?: Record<string, string | undefined>;
  /** Extra command-line arguments for jupyter_server. */
  extraArgs?: string[];
  /** How long to wait for /api/status. Default 60 s. */
  startTimeoutMs?: number;
}

export interface JupyterServer {
  baseUrl: string;
  wsUrl: string;
  token: string;
  port: number;
  /** pid of the jupyter_server process. */
  pid: number;
  rootDir: string;
  /** The harness's temp dir (config/data/runtime/ipython, maybe root). Removed by stop(). */
  tempDir: string;
  /** Env marker set on the server, inherited by kernels (unless a kernel clears its env). */
  markerEnv: { name: string; value: string };
  serverSettings: ServerConnection.ISettings;
  kernels: KernelManager;
  /** Last ~64 KiB of the server's stdout+stderr. */
  logs(): string;
  /** GET/POST/... `<baseUrl><apiPath>` with the token; JSON-decodes the body when there is one. */
  api<T = unknown>(apiPath: string, init?: { method?: string; body?: unknown; timeoutMs?: number }): Promise<{ status: number; body: T }>;
  /**
   * Shuts all kernels down via REST, SIGTERMs the server (SIGKILL to its process group after 3 s),
   * SIGKILLs anything still carrying the server's marker env, removes the temp dirs.
   * Idempotent. Resolves to what had to be killed by force.
   */
  stop(): Promise<StopReport>;
}

export interface StopReport {
  /** Kernels the REST shutdown was sent to. */
  kernelsShutDown: string[];
  /** true if the server ignored SIGTERM for 3 s. */
  serverKilled: boolean;
  /** Processes with the server marker that were still alive after the server exited, then SIGKILLed. */
  strayPidsKilled: number[];
}

export async function startJupyterServer(opts: StartJupyterServerOptions): Promise<JupyterServer> {
  installExitHook();
  const isolated = isolatedJupyterDirs('tsl-jupyter-');
  const tempDir = isolated.root;
  let rootDir = opts.rootDir ?? opts.cwd;
  if (!rootDir) {
    rootDir = path.join(tempDir, 'root');
    fs.mkdirSync(rootDir);
  }
  const cwd = opts.cwd ?? rootDir;
  const token = crypto.randomBytes(24).toString('hex');
  const marker = { name: SERVER_MARKER_ENV, value: crypto.randomBytes(8).toString('hex') };
  const env = childEnv(opts.jupyterPath, isolated, { ...opts.env, [marker.name]: marker.value });
  const startTimeoutMs = opts.startTimeoutMs ?? 60_000;

  // The port from freePort() can be taken before the server binds it; retry a few times.
  let lastErr: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const args = [
      '-m',
      'jupyter_server',
      '--allow-root',
      '--no-browser',
      '--ServerApp.ip=127.0.0.1',
      `--ServerApp.port=${port}`,
      '--ServerApp.port_retries=0',
      `--ServerApp.token=${token}`,
      `--ServerApp.root_dir=${rootDir}`,
      ...(opts.extraArgs ?? []),
    ];
    const logs = new TailBuffer();
    // detached: own process group, so stop() can SIGKILL the group; kernels get their own
    // sessions from jupyter_client anyway (and are covered by the marker env).
    const cp = spawn(SYSTEM_PYTHON, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    liveServers.add(cp);
    cp.stdout!.setEncoding('utf8').on('data', (d: string) => logs.push(d));
    cp.stderr!.setEncoding('utf8').on('data', (d: string) => logs.push(d));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      cp.once('exit', (code, signal) => {
        liveServers.delete(cp);
        resolve({ code, signal });
      });
    });
    cp.once('error', (e) => logs.push(`spawn error: ${String(e)}\n`));

    const baseUrl = `http://127.0.0.1:${port}/`;
    const wsUrl = `ws://127.0.0.1:${port}/`;
    try {
      await waitForStatus(baseUrl, token, startTimeoutMs, exited, logs);
    } catch (e) {
      lastErr = e;
      await killServerProcess(cp, exited);
      if (/address already in use|Errno 98/i.test(logs.toString())) continue;
      removeDir(tempDir);
      throw e;
    }

    const serverSettings = ServerConnection.makeSettings({
      baseUrl,
      wsUrl,
      token,
      appendToken: true,
      WebSocket: WebSocket as unknown as typeof globalThis.WebSocket,
      fetch: globalThis.fetch.bind(globalThis) as ServerConnection.ISettings['fetch'],
      Request: globalThis.Request as ServerConnection.ISettings['Request'],
      Headers: globalThis.Headers as ServerConnection.ISettings['Headers'],
    });
    const kernels = new KernelManager({ serverSettings });

    const api = async <T>(apiPath: string, init?: { method?: string; body?: unknown; timeoutMs?: number }): Promise<{ status: number; body: T }> => {
      const res = await fetch(new URL(apiPath.replace(/^\//, ''), baseUrl), {
        method: init?.method ?? 'GET',
        headers: { Authorization: `token ${token}`, 'Content-Type': 'application/json' },
        body: init?.body === undefined ? undefined : JSON.stringify(init.body),
        signal: AbortSignal.timeout(init?.timeoutMs ?? 30_000),
      });
      const text = await res.text();
      let body: unknown = text;
      if (text) {
        try {
          body = JSON.parse(text);
        } catch {
          /* keep text */
        }
      }
      return { status: res.status, body: body as T };
    };

    let stopping: Promise<StopReport> | undefined;
    const stop = (): Promise<StopReport> => {
      stopping ??= (async () => {
        const report: StopReport = { kernelsShutDown: [], serverKilled: false, strayPidsKilled: [] };
        const serverAlive = cp.exitCode === null && cp.signalCode === null;
        if (serverAlive) {
          try {
            const { status, body } = await api<{ id: string }[]>('api/kernels', { timeoutMs: 5000 });
            if (status === 200 && Array.isArray(body)) {
              await Promise.all(
                body.map(async (k) => {
                  report.kernelsShutDown.push(k.id);
                  try {
                    await api(`api/kernels/${k.id}`, { method: 'DELETE', timeoutMs: 20_000 });
                  } catch {
                    /* server going away */
                  }
                }),
              );
            }
          } catch {
            /* server not answering: fall through to signals */
          }
        }
        try {
          kernels.dispose(); // stops polling, closes websockets
        } catch {
          /* ignore */
        }
        // Remember what the server has spawned so far (kernels are re-parented once it exits).
        const known = cp.pid ? descendantsOf(cp.pid) : [];
        report.serverKilled = await killServerProcess(cp, exited);
        const strays = new Set([...processesWithEnv(marker.name, marker.value), ...known.filter(isAlive)]);
        if (strays.size > 0) {
          report.strayPidsKilled = killPids([...strays], 'SIGKILL');
          await waitUntilGone([...strays], 3000);
        }
        removeDir(tempDir);
        return report;
      })();
      return stopping;
    };

    return {
      baseUrl,
      wsUrl,
      token,
      port,
      pid: cp.pid!,
      rootDir,
      tempDir,
      markerEnv: marker,
      serverSettings,
      kernels,
      logs: () => logs.toString(),
      api,
      stop,
    };
  }
  removeDir(tempDir);
  throw lastErr instanceof Error ? lastErr : new Error(String(lastErr));
}

async function waitForStatus(
  baseUrl: string,
  token: string,
  timeoutMs: number,
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>,
  logs: TailBuffer,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  void exited.then((e) => (exitInfo = e));
  let lastProblem = '';
  while (Date.now() < deadline) {
    if (exitInfo) {
      throw new Error(
        `jupyter_server exited during startup (code ${exitInfo.code}, signal ${exitInfo.signal}):\n${logs.toString()}`,
      );
    }
    try {
      const res = await fetch(`${baseUrl}api/status`, {
        headers: { Authorization: `token ${token}` },
        signal: AbortSignal.timeout(2000),
      });
      if (res.status === 200) {
        await res.text();
        return;
      }
      lastProblem = `HTTP ${res.status}`;
    } catch (e) {
      lastProblem = String(e);
    }
    await sleep(100);
  }
  throw new Error(`jupyter_server did not answer /api/status within ${timeoutMs} ms (${lastProblem}):\n${logs.toString()}`);
}

/** SIGTERM, then SIGKILL to the process group after 3 s. Resolves true if SIGKILL was needed. */
async function killServerProcess(
  cp: ChildProcess,
  exited: Promise<unknown>,
): Promise<boolean> {
  if (cp.exitCode !== null || cp.signalCode !== null) return false;
  try {
    cp.kill('SIGTERM');
  } catch {
    /* gone */
  }
  const termed = await Promise.race([exited.then(() => true), sleep(3000).then(() => false)]);
  if (termed) return false;
  try {
    if (cp.pid) process.kill(-cp.pid, 'SIGKILL');
  } catch {
    cp.kill('SIGKILL');
  }
  await Promise.race([exited, sleep(3000)]);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Kernels

/** Starts a kernel by kernelspec name and waits until its kernel_info reply has arrived. */
export async function startKernel(server: JupyterServer, name: string, timeoutMs = 60_000): Promise<Kernel.IKernelConnection> {
  const kernel = await withTimeout(server.kernels.startNew({ name }), timeoutMs, `starting kernel ${name}`);
  await withTimeout(kernel.info, timeoutMs, `kernel_info from ${name}`);
  return kernel;
}

/** nbformat-like outputs. */
export type MimeBundle = Record<string, unknown>;
export interface StreamOutput {
  output_type: 'stream';
  name: 'stdout' | 'stderr';
  text: string;
}
export interface ExecuteResultOutput {
  output_type: 'execute_result';
  execution_count: number | null;
  data: MimeBundle;
  metadata: Record<string, unknown>;
}
export interface DisplayDataOutput {
  output_type: 'display_data';
  data: MimeBundle;
  metadata: Record<string, unknown>;
  /** Not part of nbformat: the transient display_id, kept so update_display_data can find it. */
  display_id?: string;
}
export interface ErrorOutput {
  output_type: 'error';
  ename: string;
  evalue: string;
  traceback: string[];
}
export type CellOutput = StreamOutput | ExecuteResultOutput | DisplayDataOutput | ErrorOutput;

export interface RunCellResult {
  reply: KernelMessage.IExecuteReplyMsg;
  /** Outputs as a notebook would store them: consecutive same-name streams merged, clear_output and update_display_data applied. */
  outputs: CellOutput[];
  /** Every iopub message of this execution (status, execute_input, stream, ..., in arrival order). */
  iopub: KernelMessage.IIOPubMessage[];
  /** Concatenated stdout / stderr stream text. */
  stdout: string;
  stderr: string;
}

export interface RunCellOptions {
  /** Reject if the reply+idle have not arrived within this time. Default 60 s. */
  timeoutMs?: number;
  stopOnError?: boolean;
  storeHistory?: boolean;
  silent?: boolean;
  /** Called for each iopub message as it arrives (e.g. to interrupt once output appears). */
  onIOPub?: (msg: KernelMessage.IIOPubMessage) => void;
}

/**
 * Executes `code`, collecting iopub for this request; resolves once `future.done` (the
 * execute_reply and the idle status) has arrived. On timeout it rejects with what arrived so far.
 */
export async function runCell(kernel: Kernel.IKernelConnection, code: string, opts: RunCellOptions = {}): Promise<RunCellResult> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const iopub: KernelMessage.IIOPubMessage[] = [];
  const outputs: CellOutput[] = [];
  let clearPending = false;
  const addOutput = (o: CellOutput): void => {
    if (clearPending) {
      outputs.length = 0;
      clearPending = false;
    }
    const last = outputs[outputs.length - 1];
    if (o.output_type === 'stream' && last?.output_type === 'stream' && last.name === o.name) {
      last.text += o.text;
    } else {
      outputs.push(o);
    }
  };
  const future = kernel.requestExecute({
    code,
    silent: opts.silent ?? false,
    store_history: opts.storeHistory ?? true,
    stop_on_error: opts.stopOnError ?? true,
    allow_stdin: false,
  });
  future.onIOPub = (msg) => {
    iopub.push(msg);
    if (KernelMessage.isStreamMsg(msg)) {
      addOutput({ output_type: 'stream', name: msg.content.name, text: msg.content.text });
    } else if (KernelMessage.isExecuteResultMsg(msg)) {
      addOutput({
        output_type: 'execute_result',
        execution_count: msg.content.execution_count,
        data: { ...msg.content.data },
        metadata: { ...msg.content.metadata },
      });
    } else if (KernelMessage.isDisplayDataMsg(msg)) {
      const displayId = (msg.content.transient as { display_id?: string } | undefined)?.display_id;
      const o: DisplayDataOutput = { output_type: 'display_data', data: { ...msg.content.data }, metadata: { ...msg.content.metadata } };
      if (displayId !== undefined) o.display_id = displayId;
      addOutput(o);
    } else if (KernelMessage.isUpdateDisplayDataMsg(msg)) {
      const displayId = (msg.content.transient as { display_id?: string } | undefined)?.display_id;
      for (const o of outputs) {
        if ((o.output_type === 'display_data' && o.display_id === displayId) && displayId !== undefined) {
          o.data = { ...msg.content.data };
          o.metadata = { ...msg.content.metadata };
        }
      }
    } else if (KernelMessage.isErrorMsg(msg)) {
      addOutput({ output_type: 'error', ename: msg.content.ename, evalue: msg.content.evalue, traceback: [...msg.content.traceback] });
    } else if (KernelMessage.isClearOutputMsg(msg)) {
      if (msg.content.wait) clearPending = true;
      else outputs.length = 0;
    }
    opts.onIOPub?.(msg);
  };
  const streamText = (name: 'stdout' | 'stderr'): string =>
    iopub
      .filter((m): m is KernelMessage.IStreamMsg => KernelMessage.isStreamMsg(m) && m.content.name === name)
      .map((m) => m.content.text)
      .join('');
  let reply: KernelMessage.IExecuteReplyMsg;
  try {
    reply = await withTimeout(future.done, timeoutMs, `running cell ${JSON.stringify(code.slice(0, 80))}`, () =>
      iopub.map((m) => `  ${m.header.msg_type} ${JSON.stringify(m.content).slice(0, 200)}`).join('\n'),
    );
  } catch (e) {
    if (!future.isDisposed) future.dispose();
    throw e;
  }
  return { reply, outputs, iopub, stdout: streamText('stdout'), stderr: streamText('stderr') };
}

/** Interrupts via REST (POST /api/kernels/<id>/interrupt); the server signals or messages the kernel per its interrupt_mode. */
export async function interruptKernel(kernel: Kernel.IKernelConnection): Promise<void> {
  await kernel.interrupt();
}

/** Waits until the kernel connection reports `status` (e.g. 'idle', 'dead'). */
export function waitForKernelStatus(kernel: Kernel.IKernelConnection, status: Kernel.Status, timeoutMs = 30_000): Promise<void> {
  if (kernel.status === status) return Promise.resolve();
  return withTimeout(
    new Promise<void>((resolve) => {
      const onChange = (_: unknown, s: Kernel.Status): void => {
        if (s === status) {
          kernel.statusChanged.disconnect(onChange);
          resolve();
        }
      };
      kernel.statusChanged.connect(onChange);
    }),
    timeoutMs,
    `kernel status ${status}`,
  );
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string, detail?: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const more = detail ? detail() : '';
      reject(new Error(`Timed out after ${ms} ms: ${what}${more ? `\nreceived so far:\n${more}` : ''}`));
    }, ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------------
// Subprocess runners (nbconvert, jupyter_kernel_test)

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/**
 * Runs a command in its own process group; on timeout SIGTERMs then SIGKILLs the whole group.
 */
export function runProcess(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<RunResult> {
  return new Promise((resolve) => {
    const cp = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const out = new TailBuffer(1024 * 1024);
    const err = new TailBuffer(1024 * 1024);
    cp.stdout!.setEncoding('utf8').on('data', (d: string) => out.push(d));
    cp.stderr!.setEncoding('utf8').on('data', (d: string) => err.push(d));
    let timedOut = false;
    const killGroup = (sig: NodeJS.Signals): void => {
      try {
        if (cp.pid) process.kill(-cp.pid, sig);
      } catch {
        /* gone */
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup('SIGTERM');
      setTimeout(() => killGroup('SIGKILL'), 3000).unref();
    }, opts.timeoutMs);
    cp.once('error', (e) => err.push(`spawn error: ${String(e)}\n`));
    cp.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: out.toString(), stderr: err.toString(), timedOut });
    });
  });
}

/** Minimal nbformat v4 notebook shape. */
export interface NotebookJson {
  nbformat: number;
  nbformat_minor: number;
  metadata: Record<string, unknown>;
  cells: Array<{
    cell_type: string;
    source: string | string[];
    metadata: Record<string, unknown>;
    outputs?: Array<Record<string, unknown>>;
    execution_count?: number | null;
    id?: string;
  }>;
}

/** nbformat's "multiline string": a string or an array of lines to concatenate. */
export function multiline(x: unknown): string {
  if (Array.isArray(x)) return x.join('');
  return typeof x === 'string' ? x : JSON.stringify(x);
}

/**
 * A saved notebook's outputs in the same shape runCell returns: stream `text` and string-valued
 * `data[mime]` joined (nbformat stores them as arrays of lines), everything else as is.
 */
export function normalizeOutputs(outputs: Array<Record<string, unknown>> | undefined): Array<Record<string, unknown>> {
  return (outputs ?? []).map((o) => {
    const n: Record<string, unknown> = { ...o };
    if (o.output_type === 'stream') n.text = multiline(o.text);
    if (o.data && typeof o.data === 'object') {
      const data: Record<string, unknown> = {};
      for (const [mime, v] of Object.entries(o.data as Record<string, unknown>)) {
        data[mime] = Array.isArray(v) && v.every((l) => typeof l === 'string') ? v.join('') : v;
      }
      n.data = data;
    }
    return n;
  });
}

/** A tiny nbformat 4.5 notebook with one code cell per source string. */
export function makeNotebook(codeCells: string[], kernelName: string, language = 'python'): NotebookJson {
  return {
    nbformat: 4,
    nbformat_minor: 5,
    metadata: {
      kernelspec: { name: kernelName, display_name: kernelName, language },
      language_info: { name: language },
    },
    cells: codeCells.map((source, i) => ({
      id: `cell-${i}`,
      cell_type: 'code',
      source,
      metadata: {},
      outputs: [],
      execution_count: null,
    })),
  };
}

export interface NbconvertOptions {
  /** Path to an .ipynb, or a notebook object (written to a temp dir). */
  notebook: string | NotebookJson;
  kernelName: string;
  jupyterPath: string[];
  /** cwd for nbconvert, and thus the kernel's cwd. Default: the notebook's directory. */
  cwd?: string;
  /** ExecutePreprocessor.timeout (per cell). Default 120. The whole run is killed after timeoutS*2+60 s. */
  timeoutS?: number;
  /** Where to write the executed notebook; default a temp file that is removed afterwards. */
  outputPath?: string;
  allowErrors?: boolean;
  env?: Record<string, string | undefined>;
}

export interface NbconvertResult {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** The executed notebook, if nbconvert wrote one. */
  executed?: NotebookJson;
  outputPath?: string;
}

/**
 * `/usr/bin/python3 -m jupyter nbconvert --to notebook --execute
 *   --ExecutePreprocessor.kernel_name=<name> --output <out> <nb>` with JUPYTER_PATH set.
 */
export async function nbconvertExecute(opts: NbconvertOptions): Promise<NbconvertResult> {
  const isolated = isolatedJupyterDirs('tsl-nbconvert-');
  try {
    let nbPath: string;
    if (typeof opts.notebook === 'string') {
      nbPath = path.resolve(opts.notebook);
    } else {
      nbPath = path.join(isolated.root, 'input.ipynb');
      fs.writeFileSync(nbPath, JSON.stringify(opts.notebook, null, 1));
    }
    const outPath = opts.outputPath ? path.resolve(opts.outputPath) : path.join(isolated.root, 'out', 'executed.ipynb');
    fs.mkdirSync(path.dirname(outPath), { recursive: true });
    const timeoutS = opts.timeoutS ?? 120;
    const args = [
      '-m',
      'jupyter',
      'nbconvert',
      '--to',
      'notebook',
      '--execute',
      `--ExecutePreprocessor.kernel_name=${opts.kernelName}`,
      `--ExecutePreprocessor.timeout=${timeoutS}`,
      ...(opts.allowErrors ? ['--allow-errors'] : []),
      '--output-dir',
      path.dirname(outPath),
      '--output',
      path.basename(outPath),
      nbPath,
    ];
    const env = childEnv(opts.jupyterPath, isolated, opts.env);
    const r = await runProcess(SYSTEM_PYTHON, args, {
      cwd: opts.cwd ?? path.dirname(nbPath),
      env,
      timeoutMs: (timeoutS * 2 + 60) * 1000,
    });
    let executed: NotebookJson | undefined;
    if (fs.existsSync(outPath)) executed = JSON.parse(fs.readFileSync(outPath, 'utf8')) as NotebookJson;
    return {
      code: r.code,
      stdout: r.stdout,
      stderr: r.stderr,
      timedOut: r.timedOut,
      executed,
      outputPath: opts.outputPath ? outPath : undefined,
    };
  } finally {
    removeDir(isolated.root);
  }
}

export interface KernelTestOptions {
  /** A Python file defining jupyter_kernel_test.KernelTests subclasses. */
  pythonFile: string;
  jupyterPath: string[];
  /** Whole-run limit. Default 300 s. */
  timeoutS?: number;
  env?: Record<string, string | undefined>;
}

/**
 * `/usr/bin/python3 -m unittest -v <file>` (run from the file's directory, so unittest can import
 * it by module name) with JUPYTER_PATH set. `output` is stdout+stderr (unittest reports on stderr).
 */
export async function runJupyterKernelTest(opts: KernelTestOptions): Promise<{ code: number | null; output: string; timedOut: boolean }> {
  const isolated = isolatedJupyterDirs('tsl-kerneltest-');
  try {
    const file = path.resolve(opts.pythonFile);
    const env = childEnv(opts.jupyterPath, isolated, opts.env);
    const r = await runProcess(SYSTEM_PYTHON, ['-m', 'unittest', '-v', path.basename(file)], {
      cwd: path.dirname(file),
      env,
      timeoutMs: (opts.timeoutS ?? 300) * 1000,
    });
    return { code: r.code, output: r.stdout + r.stderr, timedOut: r.timedOut };
  } finally {
    removeDir(isolated.root);
  }
}

// Starting a Jupyter kernel as a child process, the way a notebook server would: free ports, a
// connection file, the kernelspec argv, and a reliable way to get rid of it again.
import { ChildProcess, spawn } from "child_process";
import { randomBytes } from "crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "fs";
import { createServer, Server } from "net";
import { homedir, tmpdir } from "os";
import { delimiter, join } from "path";
import type { ConnectionInfo } from "../jupyter/wire";

export interface StartKernelOptions {
  /** A kernelspec argv; every `{connection_file}` in it is replaced by the connection file path. */
  argv: string[];
  cwd?: string;
  /** Extra environment variables, merged over this process's environment. */
  env?: Record<string, string | undefined>;
}

export interface KernelExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface KernelProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly connection: ConnectionInfo;
  readonly connectionFile: string;
  /** The temp dir (mode 0700) holding the connection file; removed by dispose(). */
  readonly tempDir: string;
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<KernelExit>;
  readonly hasExited: () => boolean;
  /**
   * For interrupt_mode "signal": SIGINT to the kernel's process group, as jupyter_client does
   * (our kernelspec relies on launched workers getting it too).
   */
  readonly interrupt: () => void;
  /** The tail of the kernel's stdout+stderr, for error messages when it misbehaves. */
  readonly diagnostics: () => string;
  /** SIGTERM to the kernel's process group, SIGKILL after 2 s, then the temp dir goes. Idempotent. */
  readonly dispose: () => Promise<void>;
}

const KILL_GRACE_MS = 2000;
const DIAGNOSTICS_LIMIT = 64 * 1024;
const CHANNELS = ["shell", "iopub", "stdin", "control", "hb"] as const;

/** Kernels still alive, killed synchronously if this process exits without disposing them. */
const liveKernels = new Set<ChildProcess>();
let exitHookInstalled = false;

export async function startKernelProcess(options: StartKernelOptions): Promise<KernelProcess> {
  const ports = await pickFreePorts(CHANNELS.length);
  const connection: ConnectionInfo = {
    transport: "tcp",
    ip: "127.0.0.1",
    key: randomBytes(32).toString("hex"),
    signature_scheme: "hmac-sha256",
    shell_port: ports[0],
    iopub_port: ports[1],
    stdin_port: ports[2],
    control_port: ports[3],
    hb_port: ports[4],
  };
  // mkdtemp creates the dir with mode 0700, so the key is only readable by us.
  const tempDir = mkdtempSync(join(tmpdir(), "tslaunch-kernel-"));
  const connectionFile = join(tempDir, "connection.json");
  writeFileSync(connectionFile, JSON.stringify(connection, null, 2), { mode: 0o600 });

  const argv = options.argv.map((a) => a.split("{connection_file}").join(connectionFile));
  if (argv.length === 0) throw new Error("kernel argv is empty");

  let child: ChildProcess;
  try {
    child = spawn(argv[0], argv.slice(1), {
      cwd: options.cwd,
      // JPY_PARENT_PID lets ipykernel-style kernels poll for our death and quits their
      // "running outside Jupyter" banner.
      env: { ...process.env, JPY_PARENT_PID: String(process.pid), ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
      // A session of its own (as jupyter_client does): a Ctrl-C in our terminal is ours to turn
      // into an interrupt, and dispose() can kill whatever the kernel spawned along with it.
      detached: true,
    });
  } catch (err) {
    rmSync(tempDir, { recursive: true, force: true });
    throw err;
  }

  let output = "";
  const keep = (chunk: Buffer) => {
    output += chunk.toString("utf8");
    if (output.length > DIAGNOSTICS_LIMIT) output = output.slice(-DIAGNOSTICS_LIMIT);
  };
  // Reading both pipes also keeps a chatty kernel from blocking on a full pipe.
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);

  let exitInfo: KernelExit | undefined;
  const exited = new Promise<KernelExit>((resolve) => {
    child.once("exit", (code, signal) => {
      exitInfo = { code, signal };
      liveKernels.delete(child);
      resolve(exitInfo);
    });
    child.once("error", (err) => {
      // spawn failure (e.g. ENOENT): there will be no "exit" event.
      keep(Buffer.from(`failed to start ${argv[0]}: ${err.message}\n`));
      exitInfo = { code: null, signal: null };
      liveKernels.delete(child);
      resolve(exitInfo);
    });
  });
  liveKernels.add(child);
  installExitHook();

  let disposing: Promise<void> | undefined;
  const dispose = () =>
    (disposing ??= (async () => {
      if (!exitInfo && child.pid !== undefined) {
        signalGroup(child, "SIGTERM");
        const timer = setTimeout(() => signalGroup(child, "SIGKILL"), KILL_GRACE_MS);
        await exited;
        clearTimeout(timer);
      }
      // The kernel may have left children in its group after exiting by itself.
      signalGroup(child, "SIGKILL");
      rmSync(tempDir, { recursive: true, force: true });
    })());

  return {
    child,
    pid: child.pid ?? -1,
    connection,
    connectionFile,
    tempDir,
    exited,
    hasExited: () => exitInfo !== undefined,
    interrupt: () => {
      if (!exitInfo) signalGroup(child, "SIGINT");
    },
    diagnostics: () => output,
    dispose,
  };
}

/** Signals the process group led by the child (it was started detached); ignores "no such process". */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      /* already gone */
    }
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Detached kernels would outlive us; "exit" handlers must be synchronous, and kill() is.
  process.on("exit", () => {
    for (const child of liveKernels) signalGroup(child, "SIGKILL");
  });
}

/** Ports the OS hands out for port 0, all held open at once so they are distinct. */
export async function pickFreePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const server = createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => resolve());
      });
    }
    return servers.map((s) => {
      const address = s.address();
      if (address === null || typeof address === "string") throw new Error("could not read a free port");
      return address.port;
    });
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

export interface KernelSpec {
  name: string;
  /** The directory holding kernel.json (the kernel's resource dir). */
  resourceDir: string;
  argv: string[];
  env: Record<string, string>;
  displayName?: string;
  language?: string;
  interruptMode?: "signal" | "message";
}

/** Jupyter data dirs, in Jupyter's precedence order: JUPYTER_PATH, user, prefix, system. */
export function jupyterDataDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  const dirs: string[] = [];
  if (env.JUPYTER_PATH) dirs.push(...env.JUPYTER_PATH.split(delimiter).filter(Boolean));
  dirs.push(env.JUPYTER_DATA_DIR || join(env.XDG_DATA_HOME || join(homedir(), ".local", "share"), "jupyter"));
  // A virtualenv/conda prefix, where `pip install ipykernel` puts its spec.
  const prefix = env.VIRTUAL_ENV || env.CONDA_PREFIX;
  if (prefix) dirs.push(join(prefix, "share", "jupyter"));
  dirs.push("/usr/local/share/jupyter", "/usr/share/jupyter");
  return [...new Set(dirs)];
}

/** Finds `kernels/<name>/kernel.json` in the first data dir that has one; undefined if none does. */
export function readKernelSpec(name: string, jupyterPaths: string[] = jupyterDataDirs()): KernelSpec | undefined {
  for (const dir of jupyterPaths) {
    const resourceDir = join(dir, "kernels", name);
    const file = join(resourceDir, "kernel.json");
    if (!existsSync(file)) continue;
    const spec = JSON.parse(readFileSync(file, "utf8"));
    if (!Array.isArray(spec.argv) || spec.argv.length === 0) throw new Error(`${file}: "argv" is missing or empty`);
    return {
      name,
      resourceDir,
      // Jupyter also substitutes {resource_dir} when launching.
      argv: spec.argv.map((a: string) => String(a).split("{resource_dir}").join(resourceDir)),
      env: spec.env ?? {},
      displayName: spec.display_name,
      language: spec.language,
      interruptMode: spec.interrupt_mode,
    };
  }
  return undefined;
}

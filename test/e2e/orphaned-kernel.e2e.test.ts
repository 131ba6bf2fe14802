// A Jupyter client that dies without shutting the kernel down (kill -9 of the client) must not
// leave the kernel, or its launch's workers, running: the kernel watches its parent (JPY_PARENT_PID),
// as ipykernel's parent poller does.
import { spawnSync } from "child_process";
import { mkdtempSync, rmSync, writeFileSync } from "fs";
import os from "os";
import path from "path";
import { afterEach, describe, expect, it } from "vitest";
import { isAlive, waitUntilGone } from "../helpers/leftovers";

const REPO = path.resolve(__dirname, "..", "..");
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A temp prefix with the tslaunch kernelspec installed (removed after the test). */
function installedPrefix(label: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), label));
  dirs.push(dir);
  const install = spawnSync(process.execPath, [path.join(REPO, "dist", "bin", "tslaunch.js"), "install", "--prefix", dir], { encoding: "utf8" });
  expect(install.status, install.stderr).toBe(0);
  return dir;
}

/** Runs a client script that prints the kernel's pid and its workers' pids, then dies; all must be gone within 5 s. */
async function expectGoneAfterClientDies(script: string, env: NodeJS.ProcessEnv): Promise<void> {
  const client = spawnSync("/usr/bin/python3", [script], { encoding: "utf8", timeout: 90_000, env });
  const pids = client.stdout.trim().split(/\s+/).map(Number);
  expect(pids.length, client.stderr).toBeGreaterThanOrEqual(3);
  const left = await waitUntilGone(pids, 5000);
  expect(left.map((p) => `${p} alive=${isAlive(p)}`)).toEqual([]);
}

function clientEnv(dir: string): NodeJS.ProcessEnv {
  return { ...process.env, JUPYTER_PATH: path.join(dir, "share", "jupyter"), TMPDIR: dir, JUPYTER_RUNTIME_DIR: path.join(dir, "runtime") };
}

describe("a kernel whose client died", () => {
  it("exits within a few seconds and takes its launch's workers with it", async () => {
    const dir = installedPrefix("tsl-orphan-");
    // A real jupyter_client starts the kernel, starts a launch, reports the pids, then dies at once.
    const script = path.join(dir, "client.py");
    writeFileSync(script, [
      "import jupyter_client, os, time",
      "km, kc = jupyter_client.manager.start_new_kernel(kernel_name='tslaunch', startup_timeout=60)",
      "kc.execute('%%launch -n 2\\nawait new Promise(r => setTimeout(r, 100000))')",
      "kernel = km.provisioner.process.pid",
      "for _ in range(100):",
      "    kids = [int(p) for p in os.popen(f'pgrep -P {kernel}').read().split()]",
      "    if len(kids) >= 2: break",
      "    time.sleep(0.1)",
      "print(kernel, *kids, flush=True)",
      "os._exit(0)",
    ].join("\n"));
    await expectGoneAfterClientDies(script, clientEnv(dir));
  }, 120_000);

  it("started raw, without JPY_PARENT_PID (as VS Code does), it still exits when the process that started it dies", async () => {
    const dir = installedPrefix("tsl-orphan-raw-");
    const script = path.join(dir, "raw-client.py");
    writeFileSync(script, [
      "import json, os, subprocess, time",
      "from jupyter_client import BlockingKernelClient",
      "from jupyter_client.connect import write_connection_file",
      `spec = json.load(open(${JSON.stringify(path.join(dir, "share", "jupyter", "kernels", "tslaunch", "kernel.json"))}))`,
      "cf, info = write_connection_file(os.path.join(os.environ['TMPDIR'], 'conn.json'))",
      "env = {k: v for k, v in os.environ.items() if k != 'JPY_PARENT_PID'}",
      "proc = subprocess.Popen([a.replace('{connection_file}', cf) for a in spec['argv']], env=env)",
      "kc = BlockingKernelClient(connection_file=cf); kc.load_connection_file(); kc.start_channels()",
      "kc.kernel_info(reply=True, timeout=60)  # (wait_for_ready needs a heartbeat the kernel may not have yet)",
      "kc.execute('%%launch -n 2\\nawait new Promise(r => setTimeout(r, 100000))')",
      "for _ in range(100):",
      "    kids = [int(p) for p in os.popen(f'pgrep -P {proc.pid}').read().split()]",
      "    if len(kids) >= 2: break",
      "    time.sleep(0.1)",
      "print(proc.pid, *kids, flush=True)",
      "os._exit(0)",
    ].join("\n"));
    const env = clientEnv(dir);
    delete env.JPY_PARENT_PID;
    await expectGoneAfterClientDies(script, env);
  }, 120_000);
});

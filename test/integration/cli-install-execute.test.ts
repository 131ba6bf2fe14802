// `tslaunch install` / `uninstall` (kernelspec and JupyterLab extension into a prefix, from Node),
// `tslaunch execute` (the main job without Jupyter), and a busy store port across nodes.
import { spawnSync } from "child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "fs";
import net from "net";
import os from "os";
import path from "path";
import { afterEach, describe, expect, it } from "vitest";

const REPO = path.resolve(__dirname, "..", "..");
const CLI = path.join(REPO, "dist", "bin", "tslaunch.js");
const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), "tsl-cli-"));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tslaunch(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: opts.cwd ?? REPO, env: { ...process.env, ...opts.env }, encoding: "utf8", timeout: opts.timeout ?? 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("tslaunch install / uninstall", () => {
  it("writes the kernelspec and the JupyterLab extension under --prefix, and removes both", () => {
    const prefix = tempDir();
    const r = tslaunch(["install", "--prefix", prefix]);
    expect(r.code, r.stderr).toBe(0);
    const specPath = path.join(prefix, "share", "jupyter", "kernels", "tslaunch", "kernel.json");
    const spec = JSON.parse(readFileSync(specPath, "utf8"));
    expect(spec.display_name).toBe("TypeScript (tslaunch)");
    expect(spec.language).toBe("typescript");
    expect(spec.interrupt_mode).toBe("signal");
    expect(spec.argv).toEqual([process.execPath, CLI, "kernel", "--connection-file", "{connection_file}"]);
    const ext = path.join(prefix, "share", "jupyter", "labextensions", "@tslaunch", "labextension", "package.json");
    expect(existsSync(ext), r.stdout + r.stderr).toBe(true);

    const u = tslaunch(["uninstall", "--prefix", prefix]);
    expect(u.code).toBe(0);
    expect(existsSync(specPath)).toBe(false);
    expect(existsSync(ext)).toBe(false);
  });

  it("the JupyterLab extension is shipped built: a fresh clone's `tslaunch install` installs it with no build step", () => {
    // Tracked by git (so a clone has it), complete (its remoteEntry is there), and what install copies.
    // (The committed build is checked as committed: `npm test` rebuilds the working copy first, and
    // webpack's file hashes depend on the folder it builds in.)
    const git = (...args: string[]) => spawnSync("git", args, { cwd: REPO, encoding: "utf8" }).stdout;
    const tracked = git("ls-files", "labextension/dist/labextension").split("\n").filter(Boolean);
    expect(tracked).toContain("labextension/dist/labextension/package.json");
    const committed = JSON.parse(git("show", "HEAD:labextension/dist/labextension/package.json"));
    expect(tracked).toContain(path.posix.join("labextension/dist/labextension", committed.jupyterlab._build.load));
    const built = JSON.parse(readFileSync(path.join(REPO, "labextension", "dist", "labextension", "package.json"), "utf8"));
    const load = built.jupyterlab._build.load as string;
    const prefix = tempDir();
    const r = tslaunch(["install", "--prefix", prefix]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).not.toMatch(/not built|build:labextension/);
    expect(existsSync(path.join(prefix, "share", "jupyter", "labextensions", "@tslaunch", "labextension", load))).toBe(true);
  });

  it("refuses two install targets at once with a clear error", () => {
    const r = tslaunch(["install", "--user", "--prefix", tempDir()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/choose one of --user, --sys-prefix and --prefix DIR/);
  });
});

describe("tslaunch execute", () => {
  it("runs the example notebook through the kernel, prints the ranks' lines and writes the executed notebook", () => {
    const out = path.join(tempDir(), "out.ipynb");
    const r = tslaunch(["execute", "notebooks/01-hello-launch.ipynb", "--output", out], { env: { TMPDIR: tempDir() } });
    expect(r.code, r.stderr).toBe(0);
    for (const rank of [0, 1, 2, 3]) expect(r.stdout).toContain(`[rank${rank}]: pid `);
    expect(r.stdout).toMatch(/tslaunch: 4 ranks on 1 node \(static\), succeeded/);
    const nb = JSON.parse(readFileSync(out, "utf8"));
    const counts = nb.cells.filter((c: { cell_type: string }) => c.cell_type === "code").map((c: { execution_count: number }) => c.execution_count);
    expect(counts).toEqual([1, 2, 3, 4]);
  });

  it("runs the data-parallel training notebook: rank 0's losses, the same curve on 1, 2 and 4 ranks, the restart after a killed rank", () => {
    const out = path.join(tempDir(), "dp.ipynb");
    const r = tslaunch(["execute", "notebooks/05-data-parallel-training.ipynb", "--output", out], { env: { TMPDIR: tempDir() }, timeout: 170_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^\[rank0\]: step +99 +loss \d+\.\d+$/m);
    for (const n of [2, 4]) expect(r.stdout).toMatch(new RegExp(`^${n} rank\\(s\\): .*max \\|Δloss\\| vs 1 rank over 100 steps (0\\.00e\\+0|\\d\\.\\d+e-([4-9]|[1-9]\\d)), weights equal on every rank after every step: true$`, "m"));
    expect(r.stdout).toContain("[tslaunch] worker group failed: rank 1 was killed by SIGKILL; restart 1/1");
    expect(r.stdout).toMatch(/\[rank0\]: finished after 1 restart\(s\)/);
  }, 180_000);

  it("exits non-zero at the first failing cell and says which", () => {
    const dir = tempDir();
    const nbPath = path.join(dir, "fails.ipynb");
    const cell = (source: string) => ({ cell_type: "code", metadata: {}, execution_count: null, outputs: [], source });
    writeFileSync(nbPath, JSON.stringify({
      nbformat: 4, nbformat_minor: 5, metadata: {},
      cells: [cell("const a = 1;"), cell("%%launch -n 2\nif (process.env.RANK === \"1\") throw new Error(\"nope\");"), cell("console.log(\"never\")")],
    }));
    const r = tslaunch(["execute", nbPath], { env: { TMPDIR: dir } });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/LaunchError: rank 1 failed first \(exit code 1\): Error: nope/);
    expect(r.stdout).not.toContain("never\n");
    expect(r.stderr).toMatch(/the notebook failed \(cell 2 of the notebook\)/);
    expect(existsSync(path.join(dir, "fails.executed.ipynb"))).toBe(true);
  });
});

describe("a busy rendezvous port across nodes", () => {
  it("is a clear error naming the port and the flag, and nothing starts", async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as net.AddressInfo).port;
    const dir = tempDir();
    writeFileSync(path.join(dir, "job.js"), "console.log('ran')\n");
    try {
      const r = tslaunch(["run", "--num_nodes", "2", "--use_port", String(port), "-n", "1", "job.js"], { cwd: dir, env: { TSLAUNCH_SECRET: "s", TMPDIR: dir } });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`cannot host the rendezvous store on 127.0.0.1:${port}`);
      expect(r.stderr).toContain("--use_port");
      expect(r.stdout).not.toContain("ran");
    } finally {
      server.close();
    }
  });
});

// Our Jupyter client against a real kernel: Debian's ipykernel (the reference implementation),
// so that client bugs are not masked by matching bugs in our own kernel.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import { join } from "path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { executeNotebook } from "../../kernel/client/execute-notebook";
import { KernelClient } from "../../kernel/client/kernel-client";
import { jupyterDataDirs, KernelProcess, readKernelSpec, startKernelProcess } from "../../kernel/client/kernel-process";
import type { JupyterMessage } from "../../kernel/jupyter/wire";

// /usr/bin/python3 explicitly: the python3 on PATH may be one without ipykernel.
const IPYKERNEL_ARGV = ["/usr/bin/python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"];
const scratch = mkdtempSync(join(tmpdir(), "tslaunch-client-test-"));
// Keep IPython's history database out of $HOME, and pydevd's frozen-modules warning out of stderr.
const KERNEL_ENV = { IPYTHONDIR: join(scratch, "ipython"), PYDEVD_DISABLE_FILE_VALIDATION: "1" };

interface Started {
  kernel: KernelProcess;
  client: KernelClient;
}
let started: Started[] = [];
/** pid and temp dir of every kernel a test started, checked after the test. */
let leftovers: { pid: number; tempDir: string }[] = [];

async function startKernel(argv = IPYKERNEL_ARGV): Promise<Started> {
  const kernel = await startKernelProcess({ argv, env: KERNEL_ENV });
  const client = KernelClient.forProcess(kernel);
  const entry = { kernel, client };
  started.push(entry);
  leftovers.push({ pid: kernel.pid, tempDir: kernel.tempDir });
  await client.waitForReady(30_000);
  return entry;
}

afterEach(async () => {
  for (const { kernel, client } of started) {
    client.close();
    await kernel.dispose();
  }
  started = [];
  for (const { pid, tempDir } of leftovers) {
    // pid -1: spawn failed, there never was a process.
    if (pid > 0) expect(existsSync(`/proc/${pid}`), `kernel process ${pid} still exists`).toBe(false);
    expect(existsSync(tempDir), `${tempDir} still exists`).toBe(false);
  }
  leftovers = [];
});

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe("KernelClient against ipykernel", () => {
  it("starts the kernel with a private connection file and gets kernel_info", async () => {
    const { kernel, client } = await startKernel();
    expect(readFileSync(kernel.connectionFile, "utf8")).toContain('"signature_scheme": "hmac-sha256"');
    const dirMode = statSync(kernel.tempDir).mode & 0o777;
    expect(dirMode).toBe(0o700);

    const info = await client.kernelInfo(10_000);
    expect(info.header.msg_type).toBe("kernel_info_reply");
    expect(info.content.status).toBe("ok");
    expect(info.content.language_info.name).toBe("python");
    expect(await client.heartbeat()).toBe(true);
  }, 40_000);

  it("executes code with stdout and an execute_result", async () => {
    const { client } = await startKernel();
    const seen: string[] = [];
    const { reply, outputs } = await client.execute("print('hello')\n40 + 2", {
      onIOPub: (msg) => seen.push(msg.header.msg_type + (msg.header.msg_type === "status" ? `:${msg.content.execution_state}` : "")),
    });
    expect(reply.content.status).toBe("ok");
    expect(reply.content.execution_count).toBe(1);
    expect(outputs).toEqual([
      { output_type: "stream", name: "stdout", text: "hello\n" },
      { output_type: "execute_result", execution_count: 1, data: { "text/plain": "42" }, metadata: {} },
    ]);
    expect(seen[0]).toBe("status:busy");
    expect(seen).toContain("execute_input");
    expect(seen[seen.length - 1]).toBe("status:idle");
  }, 40_000);

  it("reports an error cell on shell and iopub", async () => {
    const { client } = await startKernel();
    const iopubErrors: JupyterMessage[] = [];
    const { reply, outputs } = await client.execute("1 / 0", {
      onIOPub: (msg) => msg.header.msg_type === "error" && iopubErrors.push(msg),
    });
    expect(reply.content.status).toBe("error");
    expect(reply.content.ename).toBe("ZeroDivisionError");
    expect(iopubErrors).toHaveLength(1);
    expect(outputs).toHaveLength(1);
    expect(outputs[0]).toMatchObject({ output_type: "error", ename: "ZeroDivisionError" });
  }, 40_000);

  it("receives every line of a 20 000-line flood before resolving", async () => {
    const { client } = await startKernel();
    // Flushing defeats ipykernel's output batching: 2 000 separate iopub messages, more than
    // ZeroMQ's default high-water mark. (Flushing every line would take ipykernel itself ~13 s.)
    let streamMessages = 0;
    const { reply, outputs } = await client.execute("for i in range(20000):\n    print(i, flush=i % 10 == 9)", {
      onIOPub: (msg) => msg.header.msg_type === "stream" && streamMessages++,
    });
    expect(reply.content.status).toBe("ok");
    expect(outputs).toHaveLength(1); // all chunks merged into one stream output
    const lines = (outputs[0] as { text: string }).text.split("\n");
    expect(lines.pop()).toBe("");
    expect(lines).toHaveLength(20_000);
    expect(lines.every((line, i) => line === String(i))).toBe(true);
    expect(streamMessages).toBeGreaterThan(1000);
  }, 60_000);

  it("interrupts a sleeping cell within 2 s, and the kernel stays usable", async () => {
    const { client } = await startKernel();
    let running!: () => void;
    const started = new Promise<void>((resolve) => (running = resolve));
    const execution = client.execute("import time; time.sleep(30)", {
      onIOPub: (msg) => msg.header.msg_type === "execute_input" && running(),
    });
    await started;
    await new Promise((r) => setTimeout(r, 200)); // be inside time.sleep, not before it
    const t0 = Date.now();
    await client.interrupt();
    const { reply } = await execution;
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(reply.content.status).toBe("error");
    expect(reply.content.ename).toBe("KeyboardInterrupt");

    // ipykernel aborts requests that arrive while it is still "aborting" after the error (its
    // stop_on_error window closes on its next event-loop turn): under load the next request can land
    // in that window. An aborted request was not run; the kernel is usable if a later one runs.
    let after = await client.execute("1 + 1");
    for (let tries = 0; after.reply.content.status === "aborted" && tries < 5; tries++) {
      await new Promise((r) => setTimeout(r, 100));
      after = await client.execute("1 + 1");
    }
    expect(after.reply.content.status).toBe("ok");
  }, 40_000);

  it("answers complete, inspect and is_complete", async () => {
    const { client } = await startKernel();
    await client.execute("import os");
    const completion = await client.complete("os.pat", 6, 10_000);
    // Matches replace code[cursor_start:cursor_end], so they are "path", not "os.path".
    expect(completion.content.matches).toContain("path");
    expect(completion.content.cursor_start).toBe(3);
    const inspection = await client.inspect("len", 3, 0, 10_000);
    expect(inspection.content.found).toBe(true);
    expect((await client.isComplete("for i in x:", 10_000)).content.status).toBe("incomplete");
    expect((await client.isComplete("x = 1", 10_000)).content.status).toBe("complete");
  }, 40_000);

  it("shuts the kernel down over the control channel", async () => {
    const { kernel, client } = await startKernel();
    expect(await client.shutdown()).toEqual({ exited: true });
    expect(kernel.hasExited()).toBe(true);
    // A request after the kernel is gone fails instead of hanging.
    await expect(client.kernelInfo()).rejects.toThrow(/exited/);
  }, 40_000);

  it("close() ends pending requests and receive loops", async () => {
    const { client } = await startKernel();
    const execution = client.execute("import time; time.sleep(30)");
    client.close();
    await expect(execution).rejects.toThrow(/closed/);
  }, 40_000);
});

describe("a kernel that does not start", () => {
  it("fails waitForReady with the kernel's output when it exits", async () => {
    const t0 = Date.now();
    await expect(startKernel(["/usr/bin/python3", "-c", "import sys; sys.exit('no kernel here')"])).rejects.toThrow(
      /exited[\s\S]*no kernel here/,
    );
    expect(Date.now() - t0).toBeLessThan(10_000);
  }, 40_000);

  it("fails waitForReady when the executable does not exist", async () => {
    await expect(startKernel(["/nonexistent/kernel", "{connection_file}"])).rejects.toThrow(/failed to start/);
    expect(started.every((s) => s.kernel.hasExited())).toBe(true);
  }, 40_000);
});

describe("readKernelSpec", () => {
  it("finds kernels/<name>/kernel.json in the first data dir that has it", () => {
    const first = join(scratch, "jp1");
    const second = join(scratch, "jp2");
    const specDir = join(second, "kernels", "demo");
    mkdirSync(specDir, { recursive: true });
    writeFileSync(
      join(specDir, "kernel.json"),
      JSON.stringify({ argv: ["run", "{resource_dir}/k", "{connection_file}"], env: { A: "1" }, interrupt_mode: "signal" }),
    );
    const spec = readKernelSpec("demo", [first, second]);
    expect(spec).toMatchObject({ argv: ["run", `${specDir}/k`, "{connection_file}"], env: { A: "1" }, interruptMode: "signal" });
    expect(readKernelSpec("missing", [first, second])).toBeUndefined();
  });

  it("searches JUPYTER_PATH before the user and system dirs", () => {
    const dirs = jupyterDataDirs({ JUPYTER_PATH: "/a:/b", HOME: "/home/x", XDG_DATA_HOME: "/home/x/.local/share" });
    expect(dirs).toEqual(["/a", "/b", "/home/x/.local/share/jupyter", "/usr/local/share/jupyter", "/usr/share/jupyter"]);
  });

  it("finds Debian's python3 kernelspec", () => {
    expect(readKernelSpec("python3", ["/usr/share/jupyter"])?.argv).toEqual(IPYKERNEL_ARGV);
  });
});

describe("executeNotebook", () => {
  type Cell = { cell_type: string; source: string | string[]; outputs?: any[]; execution_count?: number | null };
  function writeNotebook(name: string, cells: Cell[]): string {
    const path = join(scratch, name);
    const full = cells.map((c) =>
      c.cell_type === "code" ? { metadata: {}, outputs: [], execution_count: null, ...c } : { metadata: {}, ...c },
    );
    writeFileSync(path, JSON.stringify({ nbformat: 4, nbformat_minor: 5, metadata: {}, cells: full }));
    return path;
  }
  // The kernel prints its pid and connection file, so the test can check both are gone afterwards.
  const REVEAL_KERNEL = "import os, sys\nprint('pid', os.getpid())\nprint('cf', sys.argv[sys.argv.index('-f') + 1])";
  function noteKernelFrom(notebook: any): void {
    const text: string = notebook.cells.find((c: any) => c.source === REVEAL_KERNEL).outputs[0].text;
    const pid = Number(/pid (\d+)/.exec(text)![1]);
    const connectionFile = /cf (.+)/.exec(text)![1];
    leftovers.push({ pid, tempDir: join(connectionFile, "..") });
  }

  it("runs every code cell, prints them, and writes the executed notebook", async () => {
    const path = writeNotebook("ok.ipynb", [
      { cell_type: "markdown", source: "# Title" },
      { cell_type: "code", source: REVEAL_KERNEL },
      // Two separate stream messages (the flush and the sleep split them), merged in the file.
      { cell_type: "code", source: ["import time\n", "print('a', flush=True)\n", "time.sleep(0.3)\n", "print('b')"] },
      { cell_type: "code", source: "   " },
      { cell_type: "code", source: "from IPython.display import display\ndisplay({'text/html': '<b>x</b>'}, raw=True)\n6 * 7" },
    ]);
    const outputPath = join(scratch, "out", "ok.executed.ipynb");
    let transcript = "";
    const result = await executeNotebook({
      notebookPath: path,
      outputPath,
      kernelArgv: IPYKERNEL_ARGV,
      cwd: scratch,
      env: KERNEL_ENV,
      print: (s) => (transcript += s),
    });
    expect(result).toEqual({ ok: true });

    const executed = JSON.parse(readFileSync(outputPath, "utf8"));
    noteKernelFrom(executed);
    const code = executed.cells.filter((c: Cell) => c.cell_type === "code");
    expect(code.map((c: Cell) => c.execution_count)).toEqual([1, 2, null, 3]);
    expect(code[1].outputs).toEqual([{ output_type: "stream", name: "stdout", text: "a\nb\n" }]);
    expect(code[3].outputs.map((o: any) => o.output_type)).toEqual(["display_data", "execute_result"]);
    expect(executed.cells[0]).toEqual({ cell_type: "markdown", source: "# Title", metadata: {} });

    expect(transcript).toContain("In [1]:\nimport os, sys\n");
    expect(transcript).toContain("a\nb\n");
    expect(transcript).toContain("[text/html output]\nOut[3]: 42\n");
  }, 60_000);

  it("stops at the first failing cell and does not run the rest", async () => {
    const path = writeNotebook("fail.ipynb", [
      { cell_type: "code", source: REVEAL_KERNEL },
      { cell_type: "code", source: "raise ValueError('boom')" },
      { cell_type: "code", source: "open('ran-after-failure', 'w').close()" },
    ]);
    const outputPath = join(scratch, "fail.executed.ipynb");
    let transcript = "";
    const result = await executeNotebook({
      notebookPath: path,
      outputPath,
      kernelArgv: IPYKERNEL_ARGV,
      cwd: scratch,
      env: KERNEL_ENV,
      print: (s) => (transcript += s),
      stripAnsi: true,
    });
    expect(result).toEqual({ ok: false, failedCell: 1 });

    const executed = JSON.parse(readFileSync(outputPath, "utf8"));
    noteKernelFrom(executed);
    expect(executed.cells[1].execution_count).toBe(2);
    expect(executed.cells[1].outputs[0]).toMatchObject({ output_type: "error", ename: "ValueError", evalue: "boom" });
    expect(executed.cells[2].execution_count).toBeNull();
    expect(existsSync(join(scratch, "ran-after-failure"))).toBe(false);
    expect(transcript).toContain("ValueError: boom");
    expect(transcript).not.toContain("In [3]");
  }, 60_000);

  it("interrupts a cell that exceeds the per-cell timeout", async () => {
    const path = writeNotebook("slow.ipynb", [
      { cell_type: "code", source: REVEAL_KERNEL },
      { cell_type: "code", source: "import time; time.sleep(30)" },
    ]);
    const outputPath = join(scratch, "slow.executed.ipynb");
    const t0 = Date.now();
    const result = await executeNotebook({
      notebookPath: path,
      outputPath,
      kernelArgv: IPYKERNEL_ARGV,
      env: KERNEL_ENV,
      timeoutPerCellMs: 1000,
      print: () => {},
    });
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(result.ok).toBe(false);
    expect(result.failedCell).toBe(1);
    expect(result.error).toMatch(/timed out after 1 s/);
    const executed = JSON.parse(readFileSync(outputPath, "utf8"));
    noteKernelFrom(executed);
    expect(executed.cells[1].outputs[0]).toMatchObject({ output_type: "error", ename: "KeyboardInterrupt" });
  }, 60_000);

  it("stops when its AbortSignal fires", async () => {
    const path = writeNotebook("abort.ipynb", [
      { cell_type: "code", source: REVEAL_KERNEL },
      { cell_type: "code", source: "import time; time.sleep(30)" },
    ]);
    const outputPath = join(scratch, "abort.executed.ipynb");
    const abort = new AbortController();
    const t0 = Date.now();
    const result = await executeNotebook({
      notebookPath: path,
      outputPath,
      kernelArgv: IPYKERNEL_ARGV,
      env: KERNEL_ENV,
      signal: abort.signal,
      print: (s) => s.includes("time.sleep") && setTimeout(() => abort.abort(), 300),
    });
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(result).toMatchObject({ ok: false, failedCell: 1, error: expect.stringMatching(/aborted/) });
    noteKernelFrom(JSON.parse(readFileSync(outputPath, "utf8")));
  }, 60_000);

  it("reports a kernel that cannot start as a failed run", async () => {
    const path = writeNotebook("nokernel.ipynb", [{ cell_type: "code", source: "1" }]);
    const result = await executeNotebook({ notebookPath: path, kernelArgv: ["/nonexistent/kernel"], print: () => {} });
    expect(result.ok).toBe(false);
    expect(result.error).toMatch(/failed to start/);
  }, 60_000);
});

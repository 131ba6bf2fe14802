// Jupyter's interrupt (SIGINT to the kernel's process group) against our kernel, in both ways it
// hears it (kernel/interrupt-signal.ts): Node's SIGINT helper started once ("watchdog" mode), and
// a plain listener, which is also what the kernel switches to while a cell's own SIGINT listener
// is there. Each case: the cell ends with KeyboardInterrupt, the kernel lives, the next cell runs.
import { existsSync } from "fs";
import path from "path";
import { afterEach, describe, expect, it } from "vitest";
import { KernelClient, type ExecuteResult } from "../../kernel/client/kernel-client";
import { startKernelProcess, type KernelProcess } from "../../kernel/client/kernel-process";

const CLI = path.join(__dirname, "..", "..", "dist", "bin", "tslaunch.js");

interface Started {
  kernel: KernelProcess;
  client: KernelClient;
}
let started: Started[] = [];

/** Prompts the kernel sent, and what they asked. */
let asked: string[] = [];

async function startKernel(env: Record<string, string> = {}): Promise<Started> {
  const kernel = await startKernelProcess({ argv: [process.execPath, CLI, "kernel", "--connection-file", "{connection_file}"], env });
  const client = KernelClient.forProcess(kernel, { onInputRequest: (prompt) => (asked.push(prompt), "an answer") });
  started.push({ kernel, client });
  await client.waitForReady(60_000);
  return { kernel, client };
}

afterEach(async () => {
  for (const { kernel, client } of started) {
    client.close();
    await kernel.dispose();
    expect(existsSync(`/proc/${kernel.pid}`), `kernel ${kernel.pid} still exists`).toBe(false);
  }
  started = [];
  asked = [];
});

async function ok(client: KernelClient, code: string): Promise<ExecuteResult> {
  const r = await client.execute(code);
  expect(r.reply.content.status, `${code}\n${JSON.stringify(r.outputs)}`).toBe("ok");
  return r;
}

const text = (r: ExecuteResult) => JSON.stringify(r.outputs);

/** Runs `code`, sends SIGINT once it is running, and returns the reply and how long it took after the signal. */
async function interrupted({ kernel, client }: Started, code: string): Promise<{ r: ExecuteResult; ms: number }> {
  let running!: () => void;
  const isRunning = new Promise<void>((resolve) => (running = resolve));
  const execution = client.execute(code, { onIOPub: (msg) => msg.header.msg_type === "execute_input" && running() });
  await isRunning;
  await new Promise((r) => setTimeout(r, 300)); // inside the loop or the await, not before it
  const t0 = Date.now();
  kernel.interrupt();
  const r = await execution;
  return { r, ms: Date.now() - t0 };
}

async function expectInterruptible(k: Started, code: string): Promise<void> {
  const { r, ms } = await interrupted(k, code);
  expect(r.reply.content, code).toMatchObject({ status: "error", ename: "KeyboardInterrupt" });
  expect(ms, `${code}: the interrupt took ${ms} ms`).toBeLessThan(2000);
  expect(k.kernel.hasExited()).toBe(false);
  expect(text(await ok(k.client, "21 * 2"))).toContain("42");
}

const mode = async (client: KernelClient) => text(await ok(client, `(require(${JSON.stringify(path.join(__dirname, "..", "..", "dist", "kernel", "interrupt-signal.js"))}) as any).interruptMode()`));

describe("interrupts through Node's SIGINT helper, started once (watchdog mode)", () => {
  it("ends a busy loop and an endless await; a SIGINT between cells interrupts nothing", async () => {
    const k = await startKernel();
    expect(await mode(k.client)).toContain("watchdog");
    await expectInterruptible(k, "let spins = 0;\nwhile (true) { spins++; }");
    await expectInterruptible(k, "await new Promise(() => {});");
    // Between cells: the pending flag is read and nothing is interrupted; the kernel does not die.
    process.kill(k.kernel.pid, "SIGINT");
    await new Promise((r) => setTimeout(r, 300));
    expect(k.kernel.hasExited()).toBe(false);
    expect(text(await ok(k.client, "const t0 = Date.now(); while (Date.now() - t0 < 200) {} 'not interrupted'"))).toContain("not interrupted");
  }, 60_000);

  it("a SIGINT that comes while no run is registered stops the next run before it starts (the prompt is never sent)", async () => {
    const k = await startKernel();
    // After the await the cell is outside any run; the busy wait keeps the 50 ms poll from reading
    // the flag first, so it is the prompt's run that finds it.
    const code = "await null;\nprocess.kill(process.pid, 'SIGINT');\nconst t0 = Date.now();\nwhile (Date.now() - t0 < 200) {}\nprompt('never asked');";
    const r = await k.client.execute(code, { allowStdin: true });
    expect(r.reply.content, JSON.stringify(r.outputs)).toMatchObject({ status: "error", ename: "KeyboardInterrupt" });
    expect(asked).toEqual([]);
    const next = await k.client.execute("prompt('asked now')", { allowStdin: true });
    expect(next.reply.content.status).toBe("ok");
    expect(text(next)).toContain("an answer");
    expect(asked).toEqual(["asked now"]);
  }, 60_000);

  it("a cell's own SIGINT listener switches to Node's plain way until it is removed; interrupts work throughout", async () => {
    const k = await startKernel();
    await ok(k.client, "let heard = 0;\nconst onSigint = () => { heard++; };\nprocess.on('SIGINT', onSigint);");
    expect(await mode(k.client)).toContain("listener");
    await expectInterruptible(k, "while (true) {}");
    await expectInterruptible(k, "await new Promise(() => {});");
    // In listener mode the cell's listener hears the interrupts too, as in plain Node.
    expect(text(await ok(k.client, "heard > 0"))).toContain("true");
    // After an await: during a cell's synchronous part Node's vm has taken the listeners off (and
    // puts them back after it), so an off() there finds nothing to remove, as in plain Node.
    await ok(k.client, "await null;\nprocess.off('SIGINT', onSigint);");
    expect(await mode(k.client)).toContain("watchdog");
    await expectInterruptible(k, "while (true) {}");
    // Added and removed within one run: the signal is never left to Node's default (exit).
    await ok(k.client, "const f = () => {};\nprocess.on('SIGINT', f);\nprocess.off('SIGINT', f);");
    expect(await mode(k.client)).toContain("watchdog");
    process.kill(k.kernel.pid, "SIGINT");
    await new Promise((r) => setTimeout(r, 300));
    expect(k.kernel.hasExited()).toBe(false);
    await expectInterruptible(k, "while (true) {}");
  }, 90_000);
});

describe("interrupts through a plain SIGINT listener (TSLAUNCH_INTERRUPT_WATCHDOG=0)", () => {
  it("ends a busy loop and an endless await; the kernel lives on", async () => {
    const k = await startKernel({ TSLAUNCH_INTERRUPT_WATCHDOG: "0" });
    expect(await mode(k.client)).toContain("listener");
    await expectInterruptible(k, "while (true) {}");
    await expectInterruptible(k, "await new Promise(() => {});");
  }, 60_000);
});

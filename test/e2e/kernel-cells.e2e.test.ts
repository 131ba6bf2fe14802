/**
 * Ordinary (non-%%launch) cells, through a real Jupyter server and @jupyterlab/services: what a
 * JupyterLab user sees in the cell, and what the protocol says around it.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Kernel, KernelMessage } from '@jupyterlab/services';
import { interruptKernel, runCell, type RunCellResult } from '../helpers/jupyter-server';
import { sleep } from '../helpers/leftovers';
import { setupE2E, type E2E } from './setup';

let e2e: E2E;
let kernel: Kernel.IKernelConnection;
let kernelPid: number;

beforeAll(async () => {
  e2e = await setupE2E();
  kernel = await e2e.startKernel();
  kernelPid = e2e.kernelPid(kernel);
}, 90_000);

afterEach(async () => {
  try {
    await e2e.expectNothingLeft({ kernelPid, timeoutMs: 3000 });
  } finally {
    await e2e.cleanUp();
  }
});

afterAll(async () => {
  try {
    if (kernel && !kernel.isDisposed) await kernel.shutdown().catch(() => undefined);
  } finally {
    await e2e?.stop();
  }
}, 60_000);

function types(r: RunCellResult): string[] {
  return r.iopub.map((m) => (m.header.msg_type === 'status' ? `status:${(m.content as { execution_state: string }).execution_state}` : m.header.msg_type));
}

/**
 * Starts a cell; `started` resolves `settleMs` after the kernel said busy for it (not on
 * execute_input: see the test about cells that block the event loop).
 */
function startCell(code: string, settleMs = 500): { started: Promise<void>; done: Promise<RunCellResult> } {
  let announce!: () => void;
  const started = new Promise<void>((resolve) => (announce = resolve));
  const done = runCell(kernel, code, {
    timeoutMs: 20_000,
    onIOPub: (m) => {
      if (m.header.msg_type === 'status' && (m.content as { execution_state: string }).execution_state === 'busy') {
        void sleep(settleMs).then(announce);
      }
    },
  });
  done.catch(() => announce()); // never leave `started` pending
  return { started, done };
}

/** After a test left the kernel stuck: restart it so the next tests get a working kernel. */
async function restartIfStuck(done: Promise<unknown>): Promise<void> {
  const finished = await Promise.race([done.then(() => true, () => true), sleep(100).then(() => false)]);
  if (finished) return;
  await kernel.restart();
  await kernel.info;
  kernelPid = e2e.kernelPid(kernel);
}

async function interruptAndMeasure(code: string): Promise<{ r: RunCellResult; ms: number }> {
  const { started, done } = startCell(code);
  try {
    await started;
    const t0 = Date.now();
    await interruptKernel(kernel);
    const r = await done;
    return { r, ms: Date.now() - t0 };
  } finally {
    await restartIfStuck(done);
  }
}

describe('ordinary cells through Jupyter', () => {
  it('kernel_info_reply has status ok and describes TypeScript', async () => {
    const reply = await kernel.requestKernelInfo();
    expect(reply).toBeDefined();
    const content = reply!.content as KernelMessage.IInfoReply;
    expect(content.status).toBe('ok');
    expect(content.language_info.name).toBe('typescript');
    expect(content.language_info.file_extension).toBe('.ts');
    expect(content.implementation).toBe('tslaunch');
  });

  it('declarations (values, functions, types) carry over to later cells', async () => {
    const a = await runCell(kernel, 'const greeting = "hello";\nfunction twice(x: number): number { return 2 * x; }\ninterface Point { x: number; y: number }');
    expect(a.reply.content.status).toBe('ok');
    expect(a.outputs).toEqual([]);
    const b = await runCell(kernel, 'const p: Point = { x: twice(10), y: 1 };\nconsole.log(greeting, p.x + p.y);');
    expect(b.reply.content.status).toBe('ok');
    expect(b.outputs).toEqual([{ output_type: 'stream', name: 'stdout', text: 'hello 21\n' }]);
  });

  it('top-level await works, including as the trailing expression', async () => {
    const r = await runCell(
      kernel,
      'const later = await new Promise<number>((resolve) => setTimeout(() => resolve(5), 50));\nconsole.log("later", later);\nawait Promise.resolve(later * 2)',
    );
    expect(r.reply.content.status).toBe('ok');
    expect(r.outputs).toEqual([
      { output_type: 'stream', name: 'stdout', text: 'later 5\n' },
      expect.objectContaining({ output_type: 'execute_result', data: { 'text/plain': '10' } }),
    ]);
  });

  it('a trailing expression is an execute_result ("42"), not stdout', async () => {
    const r = await runCell(kernel, '6*7');
    expect(r.reply.content.status).toBe('ok');
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('');
    expect(r.outputs).toEqual([
      { output_type: 'execute_result', execution_count: r.reply.content.execution_count, data: { 'text/plain': '42' }, metadata: {} },
    ]);
  });

  it('execute_input carries the code and execution count, between busy and idle', async () => {
    const code = 'const announced = 1;';
    const r = await runCell(kernel, code);
    const t = types(r);
    expect(t[0]).toBe('status:busy');
    expect(t[1]).toBe('execute_input');
    expect(t[t.length - 1]).toBe('status:idle');
    const input = r.iopub.find((m) => m.header.msg_type === 'execute_input') as KernelMessage.IExecuteInputMsg;
    expect(input.content.code).toBe(code);
    expect(input.content.execution_count).toBe(r.reply.content.execution_count);
  });

  it('tslab.display.html gives a display_data output', async () => {
    const r = await runCell(kernel, 'import * as tslab from "tslab";\ntslab.display.html("<b>bold</b>");');
    expect(r.reply.content.status).toBe('ok');
    expect(r.outputs).toEqual([expect.objectContaining({ output_type: 'display_data', data: expect.objectContaining({ 'text/html': '<b>bold</b>' }) })]);
  });

  it('a thrown error ends the cell with an iopub error (ename, evalue, traceback) and reply status error', async () => {
    const r = await runCell(kernel, 'console.log("before");\nthrow new RangeError("out of range");');
    expect(r.reply.content.status).toBe('error');
    const reply = r.reply.content as KernelMessage.IReplyErrorContent;
    expect(reply.ename).toBe('RangeError');
    expect(reply.evalue).toBe('out of range');
    expect(r.outputs).toHaveLength(2);
    expect(r.outputs[0]).toEqual({ output_type: 'stream', name: 'stdout', text: 'before\n' });
    const err = r.outputs[1];
    expect(err).toMatchObject({ output_type: 'error', ename: 'RangeError', evalue: 'out of range' });
    expect(err.output_type === 'error' && err.traceback.join('\n')).toContain('RangeError: out of range');
    // the kernel goes on
    const next = await runCell(kernel, '1 + 1');
    expect(next.outputs).toEqual([expect.objectContaining({ output_type: 'execute_result', data: { 'text/plain': '2' } })]);
  });

  it('a runtime error\'s traceback names cell lines, across cells and after an await, with no kernel frames or install paths', async () => {
    const define = await runCell(kernel, '// a helper\nfunction checked(x: number) {\n  if (x > 1) throw new Error("too big");\n  return x;\n}');
    expect(define.reply.content.status).toBe('ok');
    const defineCount = (define.reply.content as { execution_count: number }).execution_count;
    const r = await runCell(kernel, 'const small = 1;\nchecked(small);\nchecked(5);');
    const count = (r.reply.content as { execution_count: number }).execution_count;
    const err = r.outputs.find((o) => o.output_type === 'error');
    expect(err && err.output_type === 'error' && err.traceback).toEqual([
      'Error: too big',
      `    at checked (cell [${defineCount}], line 3)`,
      `    at cell [${count}], line 3`,
    ]);
    const later = await runCell(kernel, 'await Promise.resolve();\n\nJSON.parse("{");');
    const laterCount = (later.reply.content as { execution_count: number }).execution_count;
    const laterErr = later.outputs.find((o) => o.output_type === 'error');
    const trace = laterErr && laterErr.output_type === 'error' ? laterErr.traceback.join('\n') : '';
    expect(trace).toContain(`at cell [${laterCount}], line 3`);
    expect(trace).not.toMatch(/node_modules|dist[\\/]|evalmachine|node:/);
  });

  it('a type error is a CompileError and nothing in the cell runs', async () => {
    const r = await runCell(kernel, 'console.log("ran");\nconst wrong: number = "not a number";');
    expect(r.reply.content.status).toBe('error');
    expect(r.stdout).toBe('');
    expect(r.outputs).toHaveLength(1);
    const err = r.outputs[0];
    expect(err).toMatchObject({ output_type: 'error', ename: 'CompileError' });
    expect(err.output_type === 'error' && err.evalue).toMatch(/line 2.*not assignable to type 'number'/);
    // the failed cell declared nothing
    const next = await runCell(kernel, 'typeof wrong');
    expect(next.reply.content.status).toBe('error');
  });

  it('comm_info_request gets an ok reply (no comms)', async () => {
    const reply = await kernel.requestCommInfo({});
    expect(reply.content.status).toBe('ok');
    expect((reply.content as { comms?: unknown }).comms).toEqual({});
    const filtered = await kernel.requestCommInfo({ target_name: 'jupyter.widget' });
    expect(filtered.content.status).toBe('ok');
  });

  it('a cell printing 100 000 lines delivers every line in order, then idle', async () => {
    const t0 = Date.now();
    const r = await runCell(kernel, 'for (let i = 0; i < 100000; i++) console.log(i);', { timeoutMs: 60_000 });
    const ms = Date.now() - t0;
    expect(r.reply.content.status).toBe('ok');
    const lines = r.stdout.split('\n');
    expect(lines.pop()).toBe('');
    expect(lines.length).toBe(100_000);
    const firstWrong = lines.findIndex((l, i) => l !== String(i));
    expect(firstWrong).toBe(-1);
    // nothing of this cell arrives after its idle
    const t = types(r);
    expect(t[t.length - 1]).toBe('status:idle');
    const streams = r.iopub.filter((m) => m.header.msg_type === 'stream').length;
    console.log(`100 000 lines: ${ms} ms, ${streams} stream messages`);
    expect(streams).toBeLessThan(2000);
  }, 90_000);

  it('execute_input reaches the frontend before a cell that blocks the event loop has ended', async () => {
    let busyAt = 0;
    let inputAt = 0;
    const r = await runCell(kernel, 'const until = Date.now() + 1500;\nwhile (Date.now() < until) {}', {
      timeoutMs: 20_000,
      onIOPub: (m) => {
        if (m.header.msg_type === 'status' && (m.content as { execution_state: string }).execution_state === 'busy') busyAt = Date.now();
        if (m.header.msg_type === 'execute_input') inputAt = Date.now();
      },
    });
    expect(r.reply.content.status).toBe('ok');
    expect(inputAt).toBeGreaterThan(0);
    expect(inputAt - busyAt, 'execute_input came only when the blocking cell had ended').toBeLessThan(1000);
  });

  it('interrupting `while (true) {}` ends the cell with an error within 2 s; the next cell works', async () => {
    const { r, ms } = await interruptAndMeasure('let spins = 0;\nwhile (true) { spins++; }');
    expect(ms).toBeLessThan(2000);
    expect(r.reply.content.status).toBe('error');
    expect(r.outputs.filter((o) => o.output_type === 'error')).toHaveLength(1);
    const next = await runCell(kernel, '"still alive"', { timeoutMs: 10_000 });
    expect(next.reply.content.status).toBe('ok');
    expect(next.outputs).toEqual([expect.objectContaining({ output_type: 'execute_result', data: { 'text/plain': 'still alive' } })]);
  });

  it('interrupting `await new Promise(() => {})` ends the cell with an error within 2 s; the next cell works', async () => {
    const { r, ms } = await interruptAndMeasure('await new Promise(() => {});');
    expect(ms).toBeLessThan(2000);
    expect(r.reply.content.status).toBe('error');
    expect(r.outputs.filter((o) => o.output_type === 'error')).toHaveLength(1);
    const next = await runCell(kernel, '"still alive"', { timeoutMs: 10_000 });
    expect(next.reply.content.status).toBe('ok');
    expect(next.outputs).toEqual([expect.objectContaining({ output_type: 'execute_result', data: { 'text/plain': 'still alive' } })]);
  });
});

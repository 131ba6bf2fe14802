/**
 * Editing help for `%%launch` cells through a real Jupyter server (complete_request,
 * inspect_request, is_complete_request via @jupyterlab/services), as JupyterLab asks for it: flags
 * and their values on the magic line, TypeScript in the body with cursor positions relative to
 * the whole cell.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Kernel, KernelMessage } from '@jupyterlab/services';
import { runCell } from '../helpers/jupyter-server';
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
    // Editing help never starts a worker.
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

async function complete(code: string, cursor = code.length): Promise<KernelMessage.ICompleteReplyMsg['content'] & { status: 'ok' }> {
  const reply = await kernel.requestComplete({ code, cursor_pos: cursor });
  expect(reply.content.status).toBe('ok');
  return reply.content as KernelMessage.ICompleteReplyMsg['content'] & { status: 'ok' };
}

async function inspect(code: string, cursor: number): Promise<{ found: boolean; text: string }> {
  const reply = await kernel.requestInspect({ code, cursor_pos: cursor, detail_level: 0 });
  expect(reply.content.status).toBe('ok');
  const c = reply.content as { found: boolean; data: Record<string, unknown> };
  return { found: c.found, text: String(c.data['text/plain'] ?? '') };
}

async function isComplete(code: string): Promise<{ status: string; indent?: string }> {
  const reply = await kernel.requestIsComplete({ code });
  return reply.content as { status: string; indent?: string };
}

describe('completion on the %%launch line', () => {
  it('%%launch --mixed completes to --mixed_precision, replacing the partial word', async () => {
    const code = '%%launch --mixed';
    const c = await complete(code);
    expect(c.matches).toEqual(['--mixed_precision']);
    expect(c.cursor_start).toBe('%%launch '.length);
    expect(c.cursor_end).toBe(code.length);
  });

  it('%%launch --mixed_precision b completes the value to bf16', async () => {
    const code = '%%launch --mixed_precision b';
    const c = await complete(code);
    expect(c.matches).toEqual(['bf16']);
    expect(c.cursor_start).toBe(code.length - 1);
    expect(c.cursor_end).toBe(code.length);
  });

  it('%%launch -n 2 --rdzv_backend <cursor> offers every backend (static, c10d, etcd, etcd-v2)', async () => {
    const code = '%%launch -n 2 --rdzv_backend ';
    const c = await complete(code);
    expect([...c.matches].sort()).toEqual(['c10d', 'etcd', 'etcd-v2', 'static']);
    expect(c.cursor_start).toBe(code.length);
    expect(c.cursor_end).toBe(code.length);
  });

  it('completing on the magic line of a cell that has a body still completes flags, not TypeScript', async () => {
    const line = '%%launch -n 2 --max_re';
    const c = await complete(`${line}\nconsole.log(1);`, line.length);
    expect(c.matches).toEqual(['--max_restarts']);
    expect(c.cursor_start).toBe('%%launch -n 2 '.length);
    expect(c.cursor_end).toBe(line.length);
  });
});

describe('completion inside a %%launch body', () => {
  it('completes TypeScript (Math.ab -> abs) with cursor positions relative to the whole cell', async () => {
    const code = '%%launch -n 2\nconst x = Math.ab';
    const c = await complete(code);
    expect(c.matches).toContain('abs');
    expect(c.cursor_start).toBe(code.length - 'ab'.length);
    expect(c.cursor_end).toBe(code.length);
    // The same word in an ordinary cell: the same match, positions shifted by the magic line.
    const plain = await complete('const x = Math.ab');
    expect(plain.matches).toContain('abs');
    expect(c.cursor_start - plain.cursor_start).toBe('%%launch -n 2\n'.length);
  });

  it('completes names declared by earlier cells (the body is checked against the session)', async () => {
    const def = await runCell(kernel, 'const shardCountForEditingHelp = 8;');
    expect(def.reply.content.status).toBe('ok');
    const code = '%%launch -n 2\nconsole.log(process.env.RANK);\nconst n = shardCountFor';
    const c = await complete(code);
    expect(c.matches).toContain('shardCountForEditingHelp');
    expect(c.cursor_start).toBe(code.length - 'shardCountFor'.length);
    expect(c.cursor_end).toBe(code.length);
  });
});

describe('inspection', () => {
  it('inspecting --max_restarts on the %%launch line returns its help text', async () => {
    const code = '%%launch -n 2 --max_restarts 3\nconsole.log(1);';
    const at = code.indexOf('--max_restarts') + 5;
    const r = await inspect(code, at);
    expect(r.found).toBe(true);
    expect(r.text).toContain('--max_restarts N');
    expect(r.text).toContain('How many times the worker group is restarted after a failure before the launch fails.');
    expect(r.text).toContain('Default: 0');
    expect(r.text).toContain('Example: %%launch --max_restarts 3');
  });

  it('inspecting a TypeScript name in the body returns its type information', async () => {
    const code = '%%launch -n 2\nconst y = Math.abs(-1);';
    const r = await inspect(code, code.indexOf('abs') + 1);
    expect(r.found).toBe(true);
    expect(r.text).toContain('abs');
  });
});

describe('is_complete', () => {
  it('a %%launch cell whose body is unfinished (function f() {) is incomplete; a finished one is complete after an empty line, as ipykernel\'s cell magics', async () => {
    expect((await isComplete('%%launch -n 2\nfunction f() {')).status).toBe('incomplete');
    expect((await isComplete('%%launch -n 2\nfunction f() {}')).status).toBe('incomplete');
    expect((await isComplete('%%launch -n 2\nfunction f() {}\n')).status).toBe('complete');
    expect((await isComplete('%%launch -n 2')).status).toBe('incomplete');
    expect((await isComplete('function f() {}')).status).toBe('complete');
  });
});

describe('the --flag=value form (which the flag parser accepts: %%launch --mixed_precision=bf16)', () => {
  it('%%launch --mixed_precision=b completes the value to bf16', async () => {
    const code = '%%launch --mixed_precision=b';
    const c = await complete(code);
    expect(c.matches).toEqual(['bf16']);
    expect(c.cursor_start).toBe(code.length - 1);
    expect(c.cursor_end).toBe(code.length);
  });

  it('%%launch -n 2 --rdzv_backend=<cursor> offers every backend, not the flags', async () => {
    const code = '%%launch -n 2 --rdzv_backend=';
    const c = await complete(code);
    expect([...c.matches].sort()).toEqual(['c10d', 'etcd', 'etcd-v2', 'static']);
    expect(c.cursor_start).toBe(code.length);
  });

  it('inspecting the value of --max_restarts=3 returns the flag\'s help, as it does for --max_restarts 3', async () => {
    const spaced = await inspect('%%launch --max_restarts 3', '%%launch --max_restarts 3'.length);
    expect(spaced.found).toBe(true);
    const joined = await inspect('%%launch --max_restarts=3', '%%launch --max_restarts=3'.length);
    expect(joined).toEqual(spaced);
  });
});

describe('cursor positions are Unicode code points (messaging spec 5.2+), not UTF-16 units', () => {
  // An astral character (2 UTF-16 units, 1 code point) before the cursor: JupyterLab sends and reads
  // cursor_pos / cursor_start / cursor_end in code points.
  it('completion in a body after a line with an emoji', async () => {
    const code = '%%launch -n 2 --log_line_prefix_template "\u{1F680} "\nconst x = Math.ab';
    const cp = [...code].length;
    const c = await complete(code, cp);
    expect(c.matches).toContain('abs');
    expect(c.cursor_start).toBe(cp - 2);
    expect(c.cursor_end).toBe(cp);
  });
});

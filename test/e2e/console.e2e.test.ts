/**
 * jupyter console (Debian's 6.4, prompt_toolkit in a pseudo-terminal), as a person uses it: a typed
 * `%%launch` cell waits for its body and the empty line (is_complete), a pasted one runs whole, the
 * launch's first display claims no state that would go stale (the console drops display updates),
 * and Ctrl-C as `kill -INT` of the kernel ends a cell with KeyboardInterrupt (console 6.4's own
 * Ctrl-C does not interrupt: jupyter/jupyter_console#296). The session: test/frontends/console_session.py.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT, useKernelEnv } from './setup';

const kernelEnv = useKernelEnv();

describe('jupyter console', () => {
  it('typed and pasted %%launch cells run with their bodies, the first display is not stale, the final state shows at the end, kill -INT interrupts', async () => {
    const env = { ...kernelEnv().childEnv, JUPYTER_PATH: kernelEnv().spec.jupyterDir, JUPYTER_RUNTIME_DIR: path.join(kernelEnv().tmp, 'runtime') };
    const child = spawn('/usr/bin/python3', [path.join(REPO_ROOT, 'test', 'frontends', 'console_session.py')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code, out).toBe(0);
    const lines = out.split('\n').map((l) => l.trimEnd()).filter(Boolean);
    // The typed cell ran once, with its body (not `%%launch -n 2` alone, then the body as a cell).
    expect(lines.filter((l) => l.startsWith('[rank')).sort()).toEqual(['[rank0]: pasted 0', '[rank0]: typed 0', '[rank1]: pasted 1', '[rank1]: typed 1']);
    expect(out).not.toMatch(/typed undefined/);
    // What the console shows of the view: the opening line, with no state in it, then the end note
    // with the final state (frontends that render HTML show nothing for it).
    const views = lines.filter((l) => l.startsWith('tslaunch: '));
    expect(views).toHaveLength(4);
    for (const i of [0, 2]) expect(views[i]).toBe('tslaunch: launch of 2 ranks on 1 node (static)');
    for (const i of [1, 3]) expect(views[i]).toMatch(/^tslaunch: 2 ranks on 1 node \(static\), succeeded, \d+\.\d s, restarts 0\/0$/);
    expect(lines.filter((l) => /^ {2}rank [01] +node 0 +pid \d+ +succeeded/.test(l))).toHaveLength(4);
    expect(out).toContain('KeyboardInterrupt: the cell was interrupted');
    expect(out).toMatch(/Out\[\d+\]: 42/);
  }, 180_000);
});

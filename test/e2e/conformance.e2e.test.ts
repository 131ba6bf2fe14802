/**
 * jupyter_kernel_test (Debian's python3-jupyter-kernel-test) against the installed tslaunch
 * kernelspec: test/conformance/test_tslaunch_kernel.py.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runJupyterKernelTest } from '../helpers/jupyter-server';
import { REPO_ROOT, useKernelEnv } from './setup';

const PYTHON_FILE = path.join(REPO_ROOT, 'test', 'conformance', 'test_tslaunch_kernel.py');

const kernelEnv = useKernelEnv();

describe('Jupyter protocol conformance', () => {
  it('the tslaunch kernel passes jupyter_kernel_test, including its %%launch checks', async () => {
    const t0 = Date.now();
    const r = await runJupyterKernelTest({
      pythonFile: PYTHON_FILE,
      jupyterPath: [kernelEnv().spec.jupyterDir],
      timeoutS: 150,
      // PYTHONDONTWRITEBYTECODE: no __pycache__ beside the test file in the repo.
      env: { ...kernelEnv().childEnv, PYTHONDONTWRITEBYTECODE: '1' },
    });
    console.log(`jupyter_kernel_test took ${Date.now() - t0} ms`);
    const summary = /Ran (\d+) tests?[\s\S]*?\n(OK.*|FAILED.*)/.exec(r.output);
    if (r.code !== 0 || !summary || !summary[2].startsWith('OK')) console.log(r.output);
    expect(r.timedOut, 'jupyter_kernel_test timed out').toBe(false);
    expect(summary, 'no unittest summary in the output').not.toBeNull();
    expect(summary![2], r.output).toMatch(/^OK/);
    expect(r.code, r.output).toBe(0);
    expect(r.output).not.toMatch(/\.\.\. (FAIL|ERROR)/);
    // The suite really ran (our methods, the core checks), rather than skipping everything.
    for (const name of [
      'test_kernel_info',
      'test_execute_stdout',
      'test_execute_stderr',
      'test_completion',
      'test_is_complete',
      'test_error',
      'test_execute_result',
      'test_display_data',
      'test_inspect',
      'test_launch_prefixes_every_rank',
      'test_launch_failure_is_one_error',
      'test_input_request_for_prompt',
      'test_async_input_with_password',
      'test_prompt_without_stdin_is_a_clear_error',
      'test_interrupt_ends_a_waiting_prompt',
      'test_heartbeat_answers_while_a_cell_is_busy',
      'test_launch_replays_the_answers_and_its_body_cannot_ask',
    ]) {
      expect(r.output).toMatch(new RegExp(`${name} \\([^)]*\\)[^\\n]*\\.\\.\\. ok`));
    }
  }, 200_000);
});

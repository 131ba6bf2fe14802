import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

// kernel/cells/typescript-next.ts: tslab's converter on stock TypeScript (~5.9) answers as on tslab's
// fork (TypeScript 5.0.4). Each side runs in its own process (the choice is a require hook); the
// built kernel is needed (npx tsc -p tsconfig.json).
const ROOT = path.join(__dirname, '..', '..');
const PROBE = path.join(ROOT, 'test', 'fixtures', 'typescript-next', 'probe.js');
const BUILT = path.join(ROOT, 'dist', 'kernel', 'cells', 'typescript-next.js');

function probe(choice: 'fork' | 'next') {
  if (!existsSync(BUILT)) throw new Error(`${BUILT} is missing: build first (npx tsc -p tsconfig.json)`);
  const out = execFileSync(process.execPath, [PROBE], { env: { ...process.env, TSLAUNCH_TYPESCRIPT: choice }, encoding: 'utf8', timeout: 60_000 });
  return JSON.parse(out.trim().split('\n').pop()!);
}

describe('cells on stock TypeScript (the default) answer as on tslab\'s fork (TSLAUNCH_TYPESCRIPT=fork)', () => {
  it('converts, checks, completes and inspects cells as the fork does', () => {
    const fork = probe('fork');
    const next = probe('next');
    expect(fork.version).toBe('5.0.4');
    expect(next.version).toMatch(/^5\.9\./);
    for (const name of ['let', 'use', 'typeError', 'await', 'nestedAwait', 'local']) {
      expect({ name, codes: next.cells[name].codes, tla: next.cells[name].tla, sides: next.cells[name].sides }).toEqual({ name, codes: fork.cells[name].codes, tla: fork.cells[name].tla, sides: fork.cells[name].sides });
    }
    expect(next.cells.typeError.codes).toEqual([2322]);
    expect(next.cells.await.tla).toBe(true); // run in an async function
    expect(next.cells.nestedAwait.codes).toEqual([1308]); // await in a plain arrow function stays an error
    expect(next.cells.forAwait.tla).toBe(true); // the fork let this through to a SyntaxError
    expect(next.cells.use.output).toBe(fork.cells.use.output);
    for (const cell of Object.values(next.cells) as { output?: string }[]) expect(cell.output ?? '').not.toMatch(/use strict/);
    expect(next.complete).toEqual(fork.complete);
    expect(next.inspect).toBe(fork.inspect);
  }, 60_000);
});

import { describe, expect, it } from 'vitest';
import { isCompleteWithoutParser } from '../../kernel/cells/cell-text';

// What the kernel answers to is_complete while TypeScript is still loading (kernel/main.ts).
describe('is_complete before TypeScript has loaded', () => {
  it('is complete when every bracket, quote, template literal and comment is closed', () => {
    for (const code of ['1 + 1', 'const s = "a(b";', "const t = `x ${f({ a: 1 })} y`;", '// open ( in a comment', 'f(/* ) */ 1)', '%%launch -n 2\nconsole.log(1)\n\n']) {
      expect(isCompleteWithoutParser(code), code).toEqual({ status: 'complete' });
    }
  });

  it('is incomplete, indented by the open brackets, while one is open', () => {
    expect(isCompleteWithoutParser('function f() {')).toEqual({ status: 'incomplete', indent: '  ' });
    expect(isCompleteWithoutParser('f([\n  {')).toEqual({ status: 'incomplete', indent: '      ' });
    expect(isCompleteWithoutParser('const t = `line one')).toEqual({ status: 'incomplete', indent: '' });
    expect(isCompleteWithoutParser('/* a comment')).toEqual({ status: 'incomplete', indent: '' });
    // a cell magic runs only after an empty line, as in ipykernel
    expect(isCompleteWithoutParser('%%launch -n 2')).toEqual({ status: 'incomplete', indent: '' });
    expect(isCompleteWithoutParser('%%launch -n 2\nconsole.log(1)')).toEqual({ status: 'incomplete', indent: '' });
  });

  it('is invalid when a closing bracket does not match', () => {
    expect(isCompleteWithoutParser(')')).toEqual({ status: 'invalid' });
    expect(isCompleteWithoutParser('f(]')).toEqual({ status: 'invalid' });
  });
});

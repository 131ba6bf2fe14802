import { describe, expect, it } from 'vitest';
import { createDisplayFunction, offeredOutput, plainOutput, type MimeOutput } from '../../launcher/contract/notebook-display';

describe('display() and Deno\'s display protocol', () => {
  const shown: MimeOutput[] = [];
  const display = createDisplayFunction((o) => shown.push(o));

  it('an object with [Symbol.for("Jupyter.display")]() shows its bundle, with a text/plain fallback added', () => {
    shown.length = 0;
    display({ [Symbol.for('Jupyter.display')]: () => ({ 'text/html': '<b>x</b>' }) });
    expect(shown).toEqual([{ data: { 'text/html': '<b>x</b>', 'text/plain': '<text/html display>' }, metadata: {} }]);
  });

  it('an async bundle is awaited; other values show as inspect() would', async () => {
    shown.length = 0;
    await display({ [Symbol.for('Jupyter.display')]: async () => ({ 'text/plain': 'later' }) });
    display({ a: [1, 2] });
    expect(shown.map((o) => o.data['text/plain'])).toEqual(['later', '{ a: [ 1, 2 ] }']);
    expect(plainOutput('s').data).toEqual({ 'text/plain': 's' });
    expect(offeredOutput(5)).toBeNull();
  });

  it('display.json and friends; a bad bundle is a clear TypeError', () => {
    shown.length = 0;
    display.json({ k: 1 });
    display.markdown('# t');
    expect(shown[0].data).toEqual({ 'application/json': { k: 1 }, 'text/plain': '{\n  "k": 1\n}' });
    expect(shown[1].data).toEqual({ 'text/markdown': '# t', 'text/plain': '# t' });
    expect(() => display({ [Symbol.for('Jupyter.display')]: () => 'nope' })).toThrow(/must return a MIME bundle/);
  });
});

import { afterAll, beforeAll, expect, it } from 'vitest';
import { runCell } from '../helpers/jupyter-server';
import { linesByRank, setupE2E, type E2E } from './setup';
let e2e: E2E;
beforeAll(async () => { e2e = await setupE2E({ extraArgs: ['--ServerApp.iopub_data_rate_limit=1e12'] }); });
afterAll(async () => { await e2e?.stop(); });
it('diag', async () => {
  const k = await e2e.startKernel();
  for (let i = 0; i < 4; i++) {
    const t = Date.now();
    const r = await runCell(k, '%%launch -n 4\nfor (let i = 0; i < 50000; i++) console.log(i);', { timeoutMs: 90000 });
    const { byRank, unprefixed } = linesByRank(r.stdout);
    console.log(Date.now() - t, r.reply.content.status, [...byRank].map(([k, v]) => `${k}:${v.length}`).join(' '), 'unpref', unprefixed.length, 'streams', r.iopub.filter(m => m.header.msg_type === 'stream').length, 'stderr', r.stderr.slice(0, 300));
  }
  await k.shutdown();
}, 300000);

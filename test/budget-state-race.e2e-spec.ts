import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { ingestOk, record } from './helpers/usage';
import { waitFor } from './helpers/wait-for';
import { startReceiver, WebhookReceiver } from './helpers/webhook-receiver';

/**
 * Issue 11's race: two key budgets are set and, a few ms later (while the PUTs may still be in
 * flight), one batch crosses both block thresholds. Every budget must block and alert, every
 * time. The periodic evaluate-all is pushed out of the way (one hour), so nothing papers over a
 * lost event-driven refresh or evaluation.
 */
const ROUNDS = Number(process.env.RACE_ROUNDS ?? 40);

describe('budget state: a budget set just before a crossing batch blocks and alerts (issue 11 race)', () => {
  let t: TestApp;
  let hook: WebhookReceiver;
  let ingestKey: string;

  beforeAll(async () => {
    t = await startTestApp({ ALERT_EVALUATION_INTERVAL_MS: '3600000', LOG_LEVEL: 'warn' });
    hook = await startReceiver();
    ingestKey = (await createSystemKey(t, 'ingest')).key;
  });
  afterAll(async () => {
    await hook.close();
    await t.close();
  });

  it(`holds in ${ROUNDS} rounds with the PUTs and the batch interleaved`, async () => {
    const org = await seedOrg(t, 'Race');
    const budget = { period: 'monthly', limit_kind: 'tokens', limit: 100, thresholds: [{ pct: 100, action: 'block' }], webhook_url: hook.url };
    const failures: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const [a, b] = await Promise.all([org.make('member'), org.make('member')]);
      const puts = Promise.all([a, b].map((k) => t.put(`/api/v1/llm/budgets/apikey/${k.id}`, budget)));
      await new Promise((r) => setTimeout(r, round % 8 === 0 ? 60 : (round * 7) % 50));
      const now = Math.floor(Date.now() / 1000);
      await ingestOk(t, ingestKey, [a, b].map((k) => record(k.id, { created_at: now, input_tokens: 100, output_tokens: 50 })));
      const ids = (await puts).map((res) => {
        expect(res.status).toBe(200);
        return res.body.id as string;
      });
      for (const [i, key] of [a, b].entries()) {
        try {
          await waitFor(async () => {
            const check = await t.post('/api/v1/llm/budgets/check', { api_key_id: key.id }, { key: ingestKey });
            return check.body.allowed === false;
          }, `key ${i} to be blocked`, 8000);
          await waitFor(async () => {
            const [{ n }] = await t.dataSource.query(`SELECT count(*)::int AS n FROM alerts WHERE budget_id = $1`, [ids[i]]);
            return n === 1;
          }, `budget ${i} to alert`, 8000);
        } catch (err) {
          failures.push(`round ${round}: ${(err as Error).message}`);
        }
      }
    }
    expect(failures).toEqual([]);
  });
});

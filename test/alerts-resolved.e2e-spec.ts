import { Webhook } from 'standardwebhooks';
import { budgetWindow, formatWindow } from '../src/budgets/budget-window';
import { alertRows, backdateBudget, monthlyBudget, settle, spend } from './helpers/alerts';
import { costBudget } from './helpers/budgets';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { ingestOk, record } from './helpers/usage';
import { startReceiver, WebhookReceiver } from './helpers/webhook-receiver';
import { waitFor } from './helpers/wait-for';

describe('budget.threshold.resolved (SPEC §5)', () => {
  let t: TestApp;
  let ingestKey: string;
  let gatewayKey: string;
  let hook: WebhookReceiver;

  beforeAll(async () => {
    t = await startTestApp({ ALERT_EVALUATION_INTERVAL_MS: '3600000', WEBHOOK_RETRY_BASE_MS: '50' });
    ingestKey = (await createSystemKey(t, 'ingest')).key;
    gatewayKey = ingestKey;
    hook = await startReceiver();
  });
  afterAll(async () => {
    await hook.close();
    await t.close();
  });

  const received = (budgetId: string) =>
    hook.requests.map((r) => ({ ...r, payload: JSON.parse(r.body) })).filter((r) => r.payload.data.budget.id === budgetId);
  const check = async (apiKeyId: string) => (await t.post('/api/v1/llm/budgets/check', { api_key_id: apiKeyId }, { key: gatewayKey })).body;

  it('is sent once, signed and logged, when a blocking budget\'s limit is raised', async () => {
    const { member } = await seedOrg(t, `resolved-${Math.random()}`);
    const url = `/api/v1/llm/budgets/apikey/${member.id}`;
    const thresholds = [
      { pct: 50, action: 'alert' },
      { pct: 100, action: 'block' },
    ];
    const put = await t.put(url, monthlyBudget(1, { webhook_url: hook.url, thresholds }));
    const secret = put.body.webhook_secret as string;
    const budgetId = put.body.id as string;
    await spend(t, ingestKey, member.id, 1_200_000_000n); // 120 %
    await waitFor(() => received(budgetId).length === 2, 'the two crossings');
    expect((await check(member.id)).allowed).toBe(false);

    // Raised above the spend: the block lifts at once and one resolved event goes out.
    const raised = await t.put(url, monthlyBudget(2, { webhook_url: hook.url, thresholds }));
    expect(raised.status).toBe(200);
    expect((await check(member.id)).allowed).toBe(true);
    await waitFor(() => received(budgetId).length === 3, 'the resolved event');
    const event = received(budgetId)[2];
    const payload = new Webhook(secret).verify(event.body, event.headers) as any;
    expect(payload.type).toBe('budget.threshold.resolved');
    expect(payload.id).toBe(event.headers['webhook-id']);
    expect(payload.data.threshold).toEqual({ pct: 100, action: 'block' });
    expect(payload.data.window).toBe(formatWindow(budgetWindow('monthly', new Date())));
    expect(payload.data.budget).toMatchObject({ id: budgetId, limit: 2, spend: { cost_spent_nano: '1200000000', pct: 60 } });

    // Raised again, lowered below the spend (blocks again, no new crossing in this window) and raised: nothing more.
    expect((await t.put(url, monthlyBudget(3, { webhook_url: hook.url, thresholds }))).status).toBe(200);
    expect((await t.put(url, monthlyBudget(1, { webhook_url: hook.url, thresholds }))).status).toBe(200);
    expect((await check(member.id)).allowed).toBe(false);
    expect((await t.put(url, monthlyBudget(5, { webhook_url: hook.url, thresholds }))).status).toBe(200);
    await settle([t.app]);
    const order = (a: unknown[], b: unknown[]) => JSON.stringify(a).localeCompare(JSON.stringify(b));
    expect(received(budgetId).map((r) => [r.payload.type, r.payload.data.threshold.pct]).sort(order)).toEqual([
      ['budget.threshold.crossed', 100],
      ['budget.threshold.crossed', 50],
      ['budget.threshold.resolved', 100],
    ]);
    const rows = await alertRows(t, budgetId);
    expect(rows.filter((r: any) => r.event_type === 'budget.threshold.resolved')).toHaveLength(1);

    // Logged like a crossing.
    const log = await t.get(`/api/v1/llm/budgets/${budgetId}/deliveries?limit=100`);
    expect(log.status).toBe(200);
    const resolvedAttempts = log.body.data.filter((d: any) => d.event_type === 'budget.threshold.resolved');
    expect(resolvedAttempts).toHaveLength(1);
    expect(resolvedAttempts[0]).toMatchObject({ alert_id: payload.id, status: 'succeeded', threshold: { pct: 100, action: 'block' } });
  });

  it('is sent when the crossed block threshold is changed to an alert, not for thresholds still blocking', async () => {
    const { member } = await seedOrg(t, `resolved-threshold-${Math.random()}`);
    const url = `/api/v1/llm/budgets/apikey/${member.id}`;
    const put = await t.put(url, monthlyBudget(1, { webhook_url: hook.url, thresholds: [{ pct: 80, action: 'block' }, { pct: 100, action: 'block' }] }));
    await spend(t, ingestKey, member.id, 1_000_000_000n);
    await waitFor(() => received(put.body.id).length === 2, 'the crossings');
    // 100 becomes an alert; 80 still blocks.
    await t.put(url, monthlyBudget(1, { webhook_url: hook.url, thresholds: [{ pct: 80, action: 'block' }, { pct: 100, action: 'alert' }] }));
    await waitFor(() => received(put.body.id).length === 3, 'the resolved event');
    await settle([t.app]);
    const events = received(put.body.id).map((r) => [r.payload.type, r.payload.data.threshold]);
    expect(events.slice(2)).toEqual([['budget.threshold.resolved', { pct: 100, action: 'block' }]]);
    expect((await check(member.id)).allowed).toBe(false);
  });

  it('is not sent on window roll-over: a block crossed in a window that has ended', async () => {
    const { member } = await seedOrg(t, `resolved-rollover-${Math.random()}`);
    const url = `/api/v1/llm/budgets/apikey/${member.id}`;
    const put = await t.put(url, costBudget(1, { webhook_url: hook.url }));
    await backdateBudget(t, put.body.id); // it existed yesterday
    // Yesterday's window crossed (a late record), today nothing spent: today is not blocked.
    const yesterday = budgetWindow('daily', new Date(Date.now() - 86_400_000));
    await ingestOk(t, ingestKey, [record(member.id, { created_at: Math.floor(yesterday.start.getTime() / 1000) + 60, cost_nano: '2000000000' })]);
    await waitFor(() => received(put.body.id).length === 2, 'yesterday\'s crossings');
    expect(received(put.body.id).map((r) => r.payload.data.window)).toEqual([formatWindow(yesterday), formatWindow(yesterday)]);
    expect((await check(member.id)).allowed).toBe(true);
    // A raise now changes nothing in a window that holds now: no resolved event, now or later.
    expect((await t.put(url, costBudget(10, { webhook_url: hook.url }))).status).toBe(200);
    await settle([t.app]);
    expect(received(put.body.id).map((r) => r.payload.type)).toEqual(['budget.threshold.crossed', 'budget.threshold.crossed']);
    expect((await alertRows(t, put.body.id)).filter((r: any) => r.event_type === 'budget.threshold.resolved')).toEqual([]);
  });
});

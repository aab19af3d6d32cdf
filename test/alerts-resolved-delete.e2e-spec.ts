import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import type { Repository } from 'typeorm';
import { WebhookDeliveryService } from '../src/alerts/webhook-delivery.service';
import { maskUrl } from '../src/common/masked-url';
import { Budget } from '../src/budgets/budget.entity';
import { budgetWindow, formatWindow } from '../src/budgets/budget-window';
import { alertRows, monthlyBudget, settle, spend } from './helpers/alerts';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { startReceiver, WebhookReceiver } from './helpers/webhook-receiver';
import { waitFor } from './helpers/wait-for';

/** SPEC §5: `budget.threshold.resolved` when a blocking budget is deleted. */
describe('budget.threshold.resolved on deletion (SPEC §5)', () => {
  let t: TestApp;
  let ingestKey: string;
  const receivers: WebhookReceiver[] = [];

  beforeAll(async () => {
    t = await startTestApp({ ALERT_EVALUATION_INTERVAL_MS: '3600000', WEBHOOK_RETRY_BASE_MS: '50' });
    ingestKey = (await createSystemKey(t, 'ingest')).key;
  });
  afterAll(async () => {
    await Promise.all(receivers.map((r) => r.close()));
    await t.close();
  });

  const receiver = async () => {
    const hook = await startReceiver();
    receivers.push(hook);
    return hook;
  };
  const events = (hook: WebhookReceiver) => hook.requests.map((r) => ({ ...r, payload: JSON.parse(r.body) }));
  const check = async (apiKeyId: string) => (await t.post('/api/v1/llm/budgets/check', { api_key_id: apiKeyId }, { key: ingestKey })).body;
  const thresholds = [
    { pct: 50, action: 'alert' },
    { pct: 100, action: 'block' },
  ];

  it('deleting a blocking budget sends one resolved event, signed (both secrets while rotating), retried and logged, with the budget as it was', async () => {
    const hook = await receiver();
    const { member } = await seedOrg(t, `resolved-delete-${Math.random()}`);
    const url = `/api/v1/llm/budgets/apikey/${member.id}`;
    const put = await t.put(url, monthlyBudget(1, { webhook_url: hook.url, thresholds }));
    const oldSecret = put.body.webhook_secret as string;
    const budgetId = put.body.id as string;
    await spend(t, ingestKey, member.id, 1_200_000_000n); // 120 %
    await waitFor(() => events(hook).length === 2, 'the two crossings');
    expect((await check(member.id)).allowed).toBe(false);
    // A new secret: the old one keeps signing for 24 h, also after the deletion.
    const newSecret = `whsec_${randomBytes(32).toString('base64')}`;
    expect((await t.put(url, monthlyBudget(1, { webhook_url: hook.url, webhook_secret: newSecret, thresholds }))).status).toBe(200);
    const before = (await t.get(`/api/v1/llm/budgets/${budgetId}`)).body;

    hook.replies.push(500); // the first attempt fails: retried without the budget row
    const deleted = await t.delete(`/api/v1/llm/budgets/${budgetId}`);
    expect(deleted.status).toBe(200);
    expect((await check(member.id)).allowed).toBe(true);
    await waitFor(() => events(hook).length === 4, 'the resolved event, after one failed attempt');
    const [failed, event] = events(hook).slice(2);
    expect(failed.body).toBe(event.body);
    expect(failed.headers['webhook-id']).toBe(event.headers['webhook-id']);
    const payload = new Webhook(newSecret).verify(event.body, event.headers) as any;
    expect(new Webhook(oldSecret).verify(event.body, event.headers)).toEqual(payload);
    expect(payload.type).toBe('budget.threshold.resolved');
    expect(payload.id).toBe(event.headers['webhook-id']);
    expect(payload.data.threshold).toEqual({ pct: 100, action: 'block' });
    expect(payload.data.window).toBe(formatWindow(budgetWindow('monthly', new Date())));
    expect(payload.data.budget).toMatchObject({
      id: budgetId,
      limit: 1,
      thresholds,
      alert_webhook_url: maskUrl(hook.url), // a webhook body never carries the URL's path or token
      created_at: before.created_at,
      updated_at: before.updated_at,
      spend: { cost_spent_nano: '1200000000', pct: 120, window: before.spend.window, resets_at: before.spend.resets_at },
    });

    // Evaluate-all afterwards sends nothing more.
    await settle([t.app]);
    expect(events(hook).map((r) => r.payload.type)).toEqual([
      'budget.threshold.crossed',
      'budget.threshold.crossed',
      'budget.threshold.resolved',
      'budget.threshold.resolved',
    ]);
    const rows = await alertRows(t, budgetId);
    const resolved = rows.filter((r: any) => r.event_type === 'budget.threshold.resolved');
    expect(resolved.map((r) => [r.id, r.state, r.threshold_pct])).toEqual([[payload.id, 'delivered', '100.000000']]);
    // The copied secrets are dropped once the alerts are settled; the copied URL stays (it is in the delivery log too).
    expect(
      await t.dataSource.query(`SELECT state, target_webhook_url, target_secret_sealed, target_previous_secret_sealed FROM alerts WHERE budget_id = $1 AND event_type = 'budget.threshold.resolved'`, [budgetId]),
    ).toEqual([{ state: 'delivered', target_webhook_url: hook.url, target_secret_sealed: null, target_previous_secret_sealed: null }]);
    // Both attempts are in the delivery log (kept in the database; the API no longer lists a deleted budget's).
    const attempts = await t.dataSource.query(`SELECT status, status_code, attempt FROM webhook_deliveries WHERE alert_id = $1 ORDER BY attempt`, [payload.id]);
    expect(attempts).toEqual([
      { status: 'failed', status_code: 500, attempt: 1 },
      { status: 'succeeded', status_code: 200, attempt: 2 },
    ]);
    expect((await t.get(`/api/v1/llm/budgets/${budgetId}/deliveries`)).status).toBe(404);
  });

  it('a budget deleted while its crossing is being delivered (between the alert read and the budget read) still sends the crossing, then the resolution', async () => {
    const hook = await receiver();
    const { member } = await seedOrg(t, `resolved-delete-race-${Math.random()}`);
    const put = await t.put(`/api/v1/llm/budgets/apikey/${member.id}`, monthlyBudget(1, { webhook_url: hook.url, thresholds: [{ pct: 100, action: 'block' }] }));
    // The interleaving, forced: the delivery's budget read waits for a DELETE of the budget, which
    // commits after the delivery read the alert (before the delete copied its target into it).
    const budgets = (t.app.get(WebhookDeliveryService) as unknown as { budgets: Repository<Budget> }).budgets;
    const original = budgets.createQueryBuilder.bind(budgets);
    let deleted = false;
    jest.spyOn(budgets, 'createQueryBuilder').mockImplementation((...args: Parameters<typeof original>) => {
      const builder = original(...args);
      const getOne = builder.getOne.bind(builder);
      builder.getOne = async () => {
        if (!deleted && builder.getParameters().id === put.body.id) {
          deleted = true;
          expect((await t.delete(`/api/v1/llm/budgets/${put.body.id}`)).status).toBe(200);
        }
        return getOne();
      };
      return builder;
    });
    try {
      await spend(t, ingestKey, member.id, 1_200_000_000n);
      await waitFor(() => events(hook).length === 2, 'the crossing and the resolution');
    } finally {
      jest.restoreAllMocks();
    }
    expect(deleted).toBe(true);
    expect(events(hook).map((r) => r.payload.type).sort()).toEqual(['budget.threshold.crossed', 'budget.threshold.resolved']);
    expect((await alertRows(t, put.body.id)).map((r: any) => [r.event_type, r.state]).sort()).toEqual([
      ['budget.threshold.crossed', 'delivered'],
      ['budget.threshold.resolved', 'delivered'],
    ]);
  });

  it('deleting a budget that does not block sends nothing: only an alert threshold crossed, or a block already resolved', async () => {
    const hook = await receiver();
    const { member } = await seedOrg(t, `resolved-delete-none-${Math.random()}`);
    const url = `/api/v1/llm/budgets/apikey/${member.id}`;
    // Spend at 60 %: the alert threshold crossed, the block not.
    const alertOnly = await t.put(url, monthlyBudget(1, { webhook_url: hook.url, thresholds }));
    await spend(t, ingestKey, member.id, 600_000_000n);
    await waitFor(() => events(hook).length === 1, 'the alert crossing');
    expect((await t.delete(`/api/v1/llm/budgets/${alertOnly.body.id}`)).status).toBe(200);

    // Blocking, then raised (one resolution), then deleted: no second resolution.
    const { member: other } = await seedOrg(t, `resolved-delete-raised-${Math.random()}`);
    const otherUrl = `/api/v1/llm/budgets/apikey/${other.id}`;
    const raised = await t.put(otherUrl, monthlyBudget(1, { webhook_url: hook.url, thresholds }));
    await spend(t, ingestKey, other.id, 1_200_000_000n);
    await waitFor(() => events(hook).length === 3, 'the two crossings');
    expect((await t.put(otherUrl, monthlyBudget(2, { webhook_url: hook.url, thresholds }))).status).toBe(200);
    await waitFor(() => events(hook).length === 4, 'the resolution of the raise');
    expect((await t.delete(`/api/v1/llm/budgets/${raised.body.id}`)).status).toBe(200);

    await settle([t.app]);
    const sent = events(hook).map((r) => [r.payload.data.budget.id, r.payload.type, r.payload.data.threshold.pct]);
    expect(sent.filter(([id]) => id === alertOnly.body.id)).toEqual([[alertOnly.body.id, 'budget.threshold.crossed', 50]]);
    expect(sent.filter(([id, type]) => id === raised.body.id && type === 'budget.threshold.resolved')).toHaveLength(1);
    expect(events(hook)).toHaveLength(4);
    expect((await alertRows(t, alertOnly.body.id)).filter((r: any) => r.event_type === 'budget.threshold.resolved')).toEqual([]);
    expect((await alertRows(t, raised.body.id)).filter((r: any) => r.event_type === 'budget.threshold.resolved')).toHaveLength(1);
  });
});

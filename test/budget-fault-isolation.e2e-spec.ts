import { AlertEvaluatorService } from '../src/alerts/alert-evaluator.service';
import { UsageIngestService } from '../src/usage/usage-ingest.service';
import { IngestRecordDto } from '../src/usage/dto/ingest.dto';
import { alertRows } from './helpers/alerts';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { ingestOk, record } from './helpers/usage';
import { waitFor } from './helpers/wait-for';
import { startReceiver, WebhookReceiver } from './helpers/webhook-receiver';

/**
 * Issue 11, point 2: one budget that cannot be evaluated (a row stored around the API, with a
 * threshold no parser would accept) never stops the evaluation of any other budget.
 */
describe('budgets: a budget that cannot be evaluated is skipped, never stops the others', () => {
  let t: TestApp;
  let hook: WebhookReceiver;
  let ingestKey: string;
  let tenant: Awaited<ReturnType<typeof seedOrg>>;
  const poisonedId = 'bud_poisonedRowStoredInSQL00';

  beforeAll(async () => {
    t = await startTestApp({ ALERT_EVALUATION_INTERVAL_MS: '3600000' });
    hook = await startReceiver();
    ingestKey = (await createSystemKey(t, 'ingest')).key;
    tenant = await seedOrg(t, 'Tenant');
    // The tenant's own budget, as the 500 of issue 11 stored it: pct 1.5e-10 (more than 9 decimals).
    await t.dataSource.query(
      `INSERT INTO budgets (id, scope, scope_id, org_id, owner, period, limit_kind, limit_value, thresholds)
       VALUES ($1, 'org', $2, $2, 'org', 'monthly', 'tokens', 100, '[{"pct": 1.5e-10, "action": "block"}]')`,
      [poisonedId, tenant.org.id],
    );
  });
  afterAll(async () => {
    await hook.close();
    await t.close();
  });

  it('the operator\'s cluster budget on the same org still blocks and alerts; lists still answer', async () => {
    const cluster = await t.put(`/api/v1/llm/budgets/org/${tenant.org.id}`, {
      period: 'monthly',
      limit_kind: 'tokens',
      limit: 100,
      owner: 'cluster',
      thresholds: [{ pct: 100, action: 'block' }],
      webhook_url: hook.url,
    });
    expect(cluster.status).toBe(200);
    await ingestOk(t, ingestKey, [record(tenant.member.id, { created_at: Math.floor(Date.now() / 1000), input_tokens: 500, output_tokens: 100 })]);

    const check = await t.post('/api/v1/llm/budgets/check', { api_key_id: tenant.member.id }, { key: ingestKey });
    expect(check.status).toBe(200);
    expect(check.body).toMatchObject({ allowed: false, blocked_by: [{ budget_id: cluster.body.id, owner: 'cluster', scope: 'org' }] });
    await waitFor(() => hook.requests.length >= 1, 'the cluster budget\'s alert');
    expect(JSON.parse(hook.requests[0].body)).toMatchObject({ data: { budget: { id: cluster.body.id }, threshold: { pct: 100, action: 'block' } } });

    const list = await t.get('/api/v1/llm/budgets');
    expect(list.status).toBe(200);
    expect(list.body.data.map((b: { id: string }) => b.id)).toContain(cluster.body.id);
    expect(list.body.data.map((b: { id: string }) => b.id)).not.toContain(poisonedId);
    const orgList = await t.get(`/api/v1/llm/budgets/org/${tenant.org.id}`, { key: tenant.orgAdmin.key });
    expect(orgList.status).toBe(200);
    expect((await t.get(`/api/v1/llm/budgets/${cluster.body.id}`, { key: tenant.orgAdmin.key })).status).toBe(200);

    // Skipped, logged with its id, counted.
    expect(t.logs.some((line) => line.includes('cannot be evaluated') && line.includes(poisonedId))).toBe(true);
    const metrics = await t.get('/metrics', { key: null });
    expect(Number(/^tally_budget_evaluation_failures_total (\d+)/m.exec(metrics.text)?.[1])).toBeGreaterThan(0);
  });

  it('evaluate-all goes on past it: a budget behind it still alerts', async () => {
    const behind = await seedOrg(t, 'Zeta');
    const budget = await t.put(`/api/v1/llm/budgets/apikey/${behind.member.id}`, { period: 'monthly', limit_kind: 'tokens', limit: 10, thresholds: [{ pct: 50, action: 'alert' }] });
    expect(budget.status).toBe(200);
    // Stored without the ingest workflow: only evaluate-all can find this crossing.
    await t.app.get(UsageIngestService).ingest([record(behind.member.id, { created_at: Math.floor(Date.now() / 1000), input_tokens: 8, output_tokens: 0 })] as unknown as IngestRecordDto[]);
    const result = await t.app.get(AlertEvaluatorService).evaluateAll();
    expect(result).toMatchObject({ ran: true });
    expect((await alertRows(t, budget.body.id)).map((a) => a.threshold_pct)).toEqual(['50.000000']);
  });
});

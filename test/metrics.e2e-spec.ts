import { costBudget } from './helpers/budgets';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { ingestOk, record } from './helpers/usage';
import { sample } from './helpers/metrics';
import { freePort } from './helpers/webhook-receiver';
import { waitFor } from './helpers/wait-for';

/** SPEC §7 / issue 15 point 3: ingest, check and per-budget figures, by outcome, with bounded labels. */
describe('metrics people can use (SPEC §7)', () => {
  let t: TestApp;
  let workerPort: number;
  let ingestKey: string;
  const apiMetrics = async () => (await t.get('/metrics', { key: null })).text;
  const workerMetrics = async () => (await fetch(`http://127.0.0.1:${workerPort}/metrics`)).text();

  beforeAll(async () => {
    workerPort = await freePort();
    t = await startTestApp({ METRICS_BUDGET_GAUGES: 'true', WORKER_METRICS_PORT: String(workerPort), ALERT_EVALUATION_INTERVAL_MS: '3600000' });
    ingestKey = (await createSystemKey(t, 'ingest')).key;
  });
  afterAll(() => t.close());

  it('counts stored records, duplicates, and spend by model (price-book models by name, any other model as "other")', async () => {
    const org = await seedOrg(t, 'Metered');
    expect((await t.put('/api/v1/llm/prices/metered-model', { input_per_mtok: '1', cached_input_per_mtok: '0.5', output_per_mtok: '2' })).status).toBe(200);
    const now = Math.floor(Date.now() / 1000);
    const priced = record(org.member.id, { model: 'metered-model', cost_nano: '1500000000', created_at: now });
    const batch = [
      priced,
      record(org.member.id, { model: 'metered-model', cost_nano: '500000000', created_at: now }),
      record(org.member.id, { model: `client-made-up-${Date.now()}`, cost_nano: '250000000', created_at: now }),
    ];
    expect(await ingestOk(t, ingestKey, batch)).toMatchObject({ accepted: 3, duplicates: 0 });
    expect(await ingestOk(t, ingestKey, [priced])).toMatchObject({ accepted: 0, duplicates: 1 });

    const text = await apiMetrics();
    expect(sample(text, 'tally_records_ingested_total')).toBe(3);
    expect(sample(text, 'tally_records_duplicates_total')).toBe(1);
    expect(sample(text, 'tally_spend_total', { model: 'metered-model', currency: 'usd' })).toBe(2);
    expect(sample(text, 'tally_spend_total', { model: 'other', currency: 'usd' })).toBe(0.25);
    expect(text).not.toContain('client-made-up-'); // unbounded client values never become labels
  });

  it('counts budget check decisions by outcome', async () => {
    const org = await seedOrg(t, 'Checked');
    const before = await apiMetrics();
    const allowedBefore = sample(before, 'tally_budget_check_decisions_total', { outcome: 'allowed' })!;
    const blockedBefore = sample(before, 'tally_budget_check_decisions_total', { outcome: 'blocked' })!;
    expect((await t.post('/api/v1/llm/budgets/check', { api_key_id: org.member.id }, { key: ingestKey })).body.allowed).toBe(true);
    await t.put(`/api/v1/llm/budgets/apikey/${org.member.id}`, costBudget(1));
    await ingestOk(t, ingestKey, [record(org.member.id, { cost_nano: '1000000000', created_at: Math.floor(Date.now() / 1000) })]);
    await waitFor(async () => (await t.post('/api/v1/llm/budgets/check', { api_key_id: org.member.id }, { key: ingestKey })).body.allowed === false, 'the block');
    const after = await apiMetrics();
    expect(sample(after, 'tally_budget_check_decisions_total', { outcome: 'allowed' })).toBeGreaterThanOrEqual(allowedBefore + 1);
    expect(sample(after, 'tally_budget_check_decisions_total', { outcome: 'blocked' })).toBeGreaterThanOrEqual(blockedBefore + 1);
  });

  it('METRICS_BUDGET_GAUGES=true: one spend-ratio series per budget, on the worker port and (PROCESS_ROLE=all) the API; gone with the budget', async () => {
    const org = await seedOrg(t, 'Gauged');
    const budget = (await t.put(`/api/v1/llm/budgets/org/${org.org.id}`, costBudget(4))).body;
    await ingestOk(t, ingestKey, [record(org.member.id, { cost_nano: '2250000000', created_at: Math.floor(Date.now() / 1000) })]);
    const labels = { budget_id: budget.id, org_id: org.org.id, scope: 'org', limit_kind: 'cost' };
    await waitFor(async () => sample(await workerMetrics(), 'tally_budget_spend_ratio', labels) === 0.5625, 'the ratio on the worker port', 15_000);
    expect(sample(await apiMetrics(), 'tally_budget_spend_ratio', labels)).toBe(0.5625);

    expect((await t.delete(`/api/v1/llm/budgets/${budget.id}`)).status).toBe(200);
    await waitFor(async () => sample(await workerMetrics(), 'tally_budget_spend_ratio', { budget_id: budget.id }) === undefined, 'the series to go', 15_000);
  });

  it('without METRICS_BUDGET_GAUGES there is no per-budget series', async () => {
    const other = await startTestApp({ ALERT_EVALUATION_INTERVAL_MS: '3600000' });
    try {
      const org = await seedOrg(other, 'Ungauged');
      await other.put(`/api/v1/llm/budgets/org/${org.org.id}`, costBudget(4));
      const text = (await other.get('/metrics', { key: null })).text;
      expect(text).not.toContain('tally_budget_spend_ratio');
      expect(text).toMatch(/^tally_queue_jobs\{queue="alerts-deliver",state="waiting"\} \d+$/m);
    } finally {
      await other.close();
    }
  });
});

import { AlertEvaluatorService } from '../src/alerts/alert-evaluator.service';
import { budgetWindow, formatWindow } from '../src/budgets/budget-window';
import { IngestRecordDto } from '../src/usage/dto/ingest.dto';
import { UsageIngestService } from '../src/usage/usage-ingest.service';
import { alertRows, backdateBudget } from './helpers/alerts';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { ingestOk, record } from './helpers/usage';
import { waitFor } from './helpers/wait-for';
import { startReceiver, WebhookReceiver } from './helpers/webhook-receiver';

const DAY_MS = 86_400_000;
/** A daily token budget alerting at 50 % of 100 tokens. */
const daily = (url: string) => ({ period: 'daily', limit_kind: 'tokens', limit: 100, thresholds: [{ pct: 50, action: 'alert' }], webhook_url: url });

/**
 * Issue 11, point 3 (SPEC §5 "every window counts"): late records and a crossing just before a
 * window's end that is evaluated after it alert for their own window, exactly once.
 */
describe('alerts: every window counts', () => {
  let t: TestApp;
  let hook: WebhookReceiver;
  let ingestKey: string;
  let org: Awaited<ReturnType<typeof seedOrg>>;
  const yesterday = () => budgetWindow('daily', new Date(Date.now() - DAY_MS));

  beforeAll(async () => {
    // The periodic evaluation is pushed out of the way: each test runs what it needs.
    t = await startTestApp({ ALERT_EVALUATION_INTERVAL_MS: '3600000' });
    hook = await startReceiver();
    ingestKey = (await createSystemKey(t, 'ingest')).key;
    org = await seedOrg(t, 'Windows');
  });
  afterAll(async () => {
    await hook.close();
    await t.close();
  });

  it('a crossing in the last second of yesterday evaluated after midnight alerts for yesterday', async () => {
    const key = await org.make('member');
    const budget = (await t.put(`/api/v1/llm/budgets/apikey/${key.id}`, daily(hook.url))).body;
    await backdateBudget(t, budget.id); // it existed yesterday
    const lastSecond = Math.floor(yesterday().end.getTime() / 1000) - 1;
    // Stored, but its evaluation never ran (a worker outage across the boundary): only the first
    // evaluate-all after midnight, which evaluates every previous window once more, sees it.
    await t.app.get(UsageIngestService).ingest([record(key.id, { created_at: lastSecond, input_tokens: 99, output_tokens: 0 })] as unknown as IngestRecordDto[]);
    await t.dataSource.query(`DELETE FROM budget_evaluation_requests`);
    await t.app.get(AlertEvaluatorService).evaluateAll();

    const rows = await alertRows(t, budget.id);
    expect(rows.map((a) => new Date(a.window_start).getTime())).toEqual([yesterday().start.getTime()]);
    expect(JSON.parse(rows[0].body).data.window).toBe(formatWindow(yesterday()));
    await waitFor(() => hook.requests.some((r) => r.body.includes(budget.id)), 'its delivery');
  });

  it('a late record for yesterday alerts for yesterday\'s daily window, once', async () => {
    const key = await org.make('member');
    const budget = (await t.put(`/api/v1/llm/budgets/apikey/${key.id}`, daily(hook.url))).body;
    await backdateBudget(t, budget.id); // it existed yesterday
    const noon = Math.floor((yesterday().start.getTime() + DAY_MS / 2) / 1000);
    await ingestOk(t, ingestKey, [record(key.id, { created_at: noon, input_tokens: 60, output_tokens: 0 })]);

    const request = await waitFor(() => hook.requests.find((r) => r.body.includes(budget.id)), 'the alert for yesterday');
    const body = JSON.parse(request.body);
    expect(body.data.window).toBe(formatWindow(yesterday()));
    expect(body.data.budget.spend).toMatchObject({ window: formatWindow(yesterday()), tokens_spent: '60' });
    // Today's window has no spend: nothing there.
    expect((await t.get(`/api/v1/llm/budgets/${budget.id}`)).body.spend.tokens_spent).toBe('0');

    // More late records and every evaluation again: still one alert for that window.
    await ingestOk(t, ingestKey, [record(key.id, { created_at: noon + 60, input_tokens: 10, output_tokens: 0 })]);
    await t.app.get(AlertEvaluatorService).evaluateAll();
    await t.app.get(AlertEvaluatorService).evaluateAll();
    const rows = await alertRows(t, budget.id);
    expect(rows.map((a) => [a.threshold_pct, new Date(a.window_start).getTime()])).toEqual([['50.000000', yesterday().start.getTime()]]);
  });

  it('late records never alert for a window that ended before the budget was created (no such budget applied then)', async () => {
    const key = await org.make('member');
    const noon = Math.floor((yesterday().start.getTime() + DAY_MS / 2) / 1000);
    // Spend of yesterday, before the budget existed: 99 tokens, 99 % of the limit set today.
    await ingestOk(t, ingestKey, [record(key.id, { created_at: noon, input_tokens: 99, output_tokens: 0 })]);
    const budget = (await t.put(`/api/v1/llm/budgets/apikey/${key.id}`, daily(hook.url))).body;
    await ingestOk(t, ingestKey, [record(key.id, { created_at: noon + 60, input_tokens: 1, output_tokens: 0 })]);
    await t.app.get(AlertEvaluatorService).evaluateAll();
    await t.app.get(AlertEvaluatorService).evaluateAll();
    expect(await alertRows(t, budget.id)).toEqual([]);
    // The budget's own windows still alert: today's.
    await ingestOk(t, ingestKey, [record(key.id, { created_at: Math.floor(Date.now() / 1000) - 1, input_tokens: 60, output_tokens: 0 })]);
    await waitFor(async () => (await alertRows(t, budget.id)).length === 1, "today's crossing");
  });

  it('records older than the 40-day horizon do not alert', async () => {
    const key = await org.make('member');
    const budget = (await t.put(`/api/v1/llm/budgets/apikey/${key.id}`, daily(hook.url))).body;
    await backdateBudget(t, budget.id); // it existed yesterday
    await ingestOk(t, ingestKey, [record(key.id, { created_at: Math.floor((Date.now() - 41 * DAY_MS) / 1000), input_tokens: 99, output_tokens: 0 })]);
    await t.app.get(AlertEvaluatorService).evaluateAll();
    expect(await alertRows(t, budget.id)).toEqual([]);
  });
});

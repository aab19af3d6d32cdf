import { AlertEvaluatorService } from '../src/alerts/alert-evaluator.service';
import { Budget } from '../src/budgets/budget.entity';
import { BudgetEvaluator } from '../src/budgets/budget-evaluator';
import { budgetWindow } from '../src/budgets/budget-window';
import { alertRows, backdateBudget, settle } from './helpers/alerts';
import { costBudget } from './helpers/budgets';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { ingestOk, record } from './helpers/usage';

const NANO = 1_000_000_000;

/** Threshold alerts at the edges of budget changes and stored rows (SPEC §5). */
describe('alerts: redefined budgets, stale evaluations, unreadable rows', () => {
  let t: TestApp;
  let ingestKey: string;
  beforeAll(async () => {
    t = await startTestApp({ ALERT_EVALUATION_INTERVAL_MS: '3600000' });
    ingestKey = (await createSystemKey(t, 'ingest')).key;
  });
  afterAll(() => t.close());

  const spendAt = (apiKeyId: string, at: number, costNano: number) =>
    ingestOk(t, ingestKey, [record(apiKeyId, { created_at: at, cost_nano: String(costNano), input_tokens: 1, output_tokens: 1 })]);

  it('alerts in a new period whose window starts with the old one (the 1st: a day and its month)', async () => {
    const { member } = await seedOrg(t, 'Repaced');
    const path = `/api/v1/llm/budgets/apikey/${member.id}`;
    const thresholds = [{ pct: 50, action: 'alert' }];
    const budget = (await t.put(path, costBudget(1, { thresholds }))).body;
    await backdateBudget(t, budget.id); // it existed on the 1st
    const month = budgetWindow('monthly', new Date());
    // The 1st of this month: its day starts when the month does.
    await spendAt(member.id, month.start.getTime() / 1000 + 3600, 0.6 * NANO);
    await settle([t.app]);
    expect((await alertRows(t, budget.id)).map((a) => new Date(a.window_start).getTime())).toEqual([month.start.getTime()]);

    expect((await t.put(path, costBudget(10, { thresholds, period: 'monthly' }))).status).toBe(200);
    await spendAt(member.id, Math.floor(Date.now() / 1000), 5 * NANO);
    await settle([t.app]);
    const rows: Array<{ window_start: Date; window_end: Date }> = await t.dataSource.query(
      `SELECT window_start, window_end FROM alerts WHERE budget_id = $1 AND event_type = 'budget.threshold.crossed' ORDER BY window_end`,
      [budget.id],
    );
    // The day's crossing, and the month's (5.6 of 10): both, each once.
    expect(rows.map((r) => [new Date(r.window_start).getTime(), new Date(r.window_end).getTime()])).toEqual([
      [month.start.getTime(), month.start.getTime() + 86_400_000],
      [month.start.getTime(), month.end.getTime()],
    ]);
  });

  it('records no crossing from an evaluation of the budget as it was before a PUT', async () => {
    const { member } = await seedOrg(t, 'Raised');
    const path = `/api/v1/llm/budgets/apikey/${member.id}`;
    const before = (await t.put(path, costBudget(10))).body;
    // An evaluation job read the budget (limit 10)...
    const stale = await t.dataSource.getRepository(Budget).findOneByOrFail({ id: before.id });
    // ...then the limit is raised to 20 and the spend reaches 12.
    expect((await t.put(path, costBudget(20))).status).toBe(200);
    await spendAt(member.id, Math.floor(Date.now() / 1000), 12 * NANO);
    const [evaluation] = await t.app.get(BudgetEvaluator).evaluate([{ budget: stale, window: budgetWindow('daily', new Date()) }]);
    expect(evaluation.reached.map((r) => r.pct)).toEqual([50, 100]);
    // Its crossings are not the budget's any more: none is recorded (the PUT's own evaluation records the 50 %).
    expect(await t.app.get(AlertEvaluatorService).recordCrossings([evaluation])).toBe(0);
    await settle([t.app]);
    expect((await alertRows(t, before.id)).map((a) => [Number(a.threshold_pct), a.threshold_action])).toEqual([[50, 'alert']]);
  });

  it('one stored threshold the alerts table cannot hold stops no other budget from alerting', async () => {
    const bad = await seedOrg(t, 'HugePct');
    const good = await seedOrg(t, 'Beside');
    // A row written around the API: pct 10^10 (the API takes at most 10^9), reached by 1 token of a
    // limit of 10^-9 tokens. Its crossing cannot be stored (numeric(16, 6)).
    await t.dataSource.query(
      `INSERT INTO budgets (id, scope, scope_id, org_id, owner, period, limit_kind, limit_value, thresholds)
       VALUES ('bud_hugePctThreshold000001', 'apikey', $1, $2, 'org', 'daily', 'tokens', 0.000000001, '[{"pct": 10000000000, "action": "alert"}]')`,
      [bad.member.id, bad.org.id],
    );
    const budget = (await t.put(`/api/v1/llm/budgets/apikey/${good.member.id}`, costBudget(1))).body;
    await spendAt(bad.member.id, Math.floor(Date.now() / 1000), 1);
    await spendAt(good.member.id, Math.floor(Date.now() / 1000), 0.6 * NANO);
    // Evaluated together in one run (its budgets in pages): the good budget's alert, the run's end.
    expect(await t.app.get(AlertEvaluatorService).evaluateAll()).toMatchObject({ ran: true });
    expect((await alertRows(t, budget.id)).map((a) => Number(a.threshold_pct))).toEqual([50]);
    expect(await alertRows(t, 'bud_hugePctThreshold000001')).toEqual([]);
    expect((await t.get('/metrics', { key: null })).text).toMatch(/tally_budget_evaluation_failures_total [1-9]/);
    await t.dataSource.query(`DELETE FROM budgets WHERE id = 'bud_hugePctThreshold000001'`);
  });
});

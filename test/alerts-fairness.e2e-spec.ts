import { performance } from 'node:perf_hooks';
import { alertRows, monthlyBudget, spend } from './helpers/alerts';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { startReceiver, WebhookReceiver } from './helpers/webhook-receiver';
import { waitFor } from './helpers/wait-for';

const alertsAt = (pcts: number[]) => pcts.map((pct) => ({ pct, action: 'alert' }));
const range = (from: number, count: number) => Array.from({ length: count }, (_, i) => from + i);

/**
 * SPEC §5 / issue 11 point 6: one org's slow endpoint cannot delay another org's alerts. Org A's
 * receiver never answers, so each of its 50 deliveries hangs until WEBHOOK_TIMEOUT_MS (the default
 * 10 s). Org B's single alert, crossed after A's 50 are queued, must reach B's receiver before any
 * of A's attempts has even timed out: it did not wait for a single one of A's slots.
 */
describe('webhook delivery fairness between orgs (SPEC §5)', () => {
  let t: TestApp;
  let hookA: WebhookReceiver;
  let hookB: WebhookReceiver;

  beforeAll(async () => {
    t = await startTestApp({ ALERT_EVALUATION_INTERVAL_MS: '3600000', WEBHOOK_TIMEOUT_MS: '10000', WEBHOOK_RETRY_BASE_MS: '600000' });
    hookA = await startReceiver({ replies: Array(200).fill('hang') });
    hookB = await startReceiver();
  });
  afterAll(async () => {
    // Closing A's receiver first ends its hanging requests, so the worker stops at once.
    await hookA.close();
    await hookB.close();
    await t.close();
  });

  it("org B's alert arrives while org A's 50 deliveries to a hanging receiver are still pending", async () => {
    const ingestKey = (await createSystemKey(t, 'ingest')).key;
    const a = await seedOrg(t, 'Slow A');
    const b = await seedOrg(t, 'Quick B');
    const [keyA1, keyA2] = [await a.make('member'), await a.make('member')];
    // 20 + 20 + 10 thresholds of org A, all crossed by one ingest: 50 alerts to the hanging receiver.
    const budgetsA = [
      (await t.put(`/api/v1/llm/budgets/org/${a.org.id}`, monthlyBudget(10, { webhook_url: hookA.url, thresholds: alertsAt(range(1, 20)) }))).body,
      (await t.put(`/api/v1/llm/budgets/apikey/${keyA1.id}`, monthlyBudget(10, { webhook_url: hookA.url, thresholds: alertsAt(range(1, 20)) }))).body,
      (await t.put(`/api/v1/llm/budgets/apikey/${keyA2.id}`, monthlyBudget(10, { webhook_url: hookA.url, thresholds: alertsAt(range(1, 10)) }))).body,
    ];
    const budgetB = (await t.put(`/api/v1/llm/budgets/org/${b.org.id}`, monthlyBudget(1, { webhook_url: hookB.url, thresholds: alertsAt([50]) }))).body;
    for (const budget of [...budgetsA, budgetB]) expect(budget.id).toMatch(/^bud_/);

    await spend(t, ingestKey, keyA1.id, 5_000_000_000n); // org 50 %, key 1 50 %
    await spend(t, ingestKey, keyA2.id, 5_000_000_000n); // org 100 %, key 2 50 %
    const countA = async () => (await Promise.all(budgetsA.map((x) => alertRows(t, x.id)))).flat().length;
    await waitFor(async () => (await countA()) === 50, "org A's 50 alerts");
    await waitFor(() => hookA.requests.length > 0, "org A's first deliveries to hang");

    const started = performance.now();
    await spend(t, ingestKey, b.member.id, 600_000_000n); // 60 %
    await waitFor(() => hookB.requests.length === 1, "org B's alert", 60_000);
    const latencyMs = Math.round(performance.now() - started);

    // The moment B's alert arrived: not one of A's attempts had finished (each hangs for 10 s),
    // and A's receiver had not been sent all 50: B did not queue behind A's backlog.
    const finishedA: Array<{ n: number }> = await t.dataSource.query(
      `SELECT count(*)::int AS n FROM webhook_deliveries WHERE budget_id = ANY($1)`,
      [budgetsA.map((x) => x.id)],
    );
    const pendingA: Array<{ n: number }> = await t.dataSource.query(
      `SELECT count(*)::int AS n FROM alerts WHERE budget_id = ANY($1) AND state = 'pending'`,
      [budgetsA.map((x) => x.id)],
    );
    const sentToA = hookA.requests.length;
    process.stdout.write(
      `fairness: org B's alert arrived ${latencyMs} ms after its ingest began; org A then had ${sentToA} of 50 requests in flight, ` +
        `${finishedA[0].n} attempts finished, ${pendingA[0].n} alerts pending\n`,
    );
    expect(JSON.parse(hookB.requests[0].body).data.budget.id).toBe(budgetB.id);
    expect(finishedA[0].n).toBe(0);
    expect(pendingA[0].n).toBe(50);
    expect(sentToA).toBeLessThan(50);

    // The operator's budget on org A (owner cluster, set by the cluster admin) has slots of its
    // own: its alert goes out while org A's own deliveries still hang (a review saw it wait ~120 s).
    const operator = (await t.put(`/api/v1/llm/budgets/apikey/${keyA1.id}`, monthlyBudget(10, { owner: 'cluster', webhook_url: hookB.url, thresholds: alertsAt([60]) }))).body;
    expect(operator.owner).toBe('cluster');
    await spend(t, ingestKey, keyA1.id, 1_000_000_000n); // key 1 at 60 %
    await waitFor(() => hookB.requests.some((r) => JSON.parse(r.body).data.budget.id === operator.id), "the operator's alert on org A", 60_000);
    const finishedNow: Array<{ n: number }> = await t.dataSource.query(
      `SELECT count(*)::int AS n FROM webhook_deliveries WHERE budget_id = ANY($1)`,
      [budgetsA.map((x) => x.id)],
    );
    expect(finishedNow[0].n).toBe(0);
  }, 120_000);
});

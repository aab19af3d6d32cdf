import { alertRows, monthlyBudget, spend } from './helpers/alerts';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { Reply, startReceiver, WebhookReceiver } from './helpers/webhook-receiver';
import { waitFor } from './helpers/wait-for';

/**
 * Redelivery is throttled (issue 11 point 6): one delivery sequence of an alert at a time; and a
 * delivery job that fails for good is logged and counted (point 8).
 */
describe('redelivery throttle and failed jobs (SPEC §5, §7)', () => {
  let t: TestApp;
  let ingestKey: string;
  const receivers: WebhookReceiver[] = [];

  beforeAll(async () => {
    // A retry waits ten minutes here: a failed attempt leaves its sequence "waiting for a retry".
    t = await startTestApp({ ALERT_EVALUATION_INTERVAL_MS: '3600000', WEBHOOK_TIMEOUT_MS: '1500', WEBHOOK_RETRY_BASE_MS: '600000', WEBHOOK_MAX_ATTEMPTS: '2' });
    ingestKey = (await createSystemKey(t, 'ingest')).key;
  });
  afterAll(async () => {
    for (const r of receivers) await r.close();
    await t.close();
  });

  /** An org with a budget (one alert threshold) posting to a receiver answering `replies`, crossed once. */
  const crossed = async (replies: Reply[]) => {
    const hook = await startReceiver({ replies });
    receivers.push(hook);
    const org = await seedOrg(t, `Redeliver ${receivers.length}`);
    const budget = (await t.put(`/api/v1/llm/budgets/org/${org.org.id}`, monthlyBudget(1, { webhook_url: hook.url, thresholds: [{ pct: 50, action: 'alert' }] }))).body;
    await spend(t, ingestKey, org.member.id, 600_000_000n);
    const first = await waitFor(async () => (await deliveries(budget.id)).find((d) => d.trigger === 'alert'), 'the first attempt logged');
    return { hook, org, budget, first };
  };
  const deliveries = async (budgetId: string) => (await t.get(`/api/v1/llm/budgets/${budgetId}/deliveries?limit=100`)).body.data as Array<Record<string, any>>;
  const redeliver = (deliveryId: string) => t.post(`/api/v1/llm/budgets/deliveries/${deliveryId}/redeliver`);
  const expectInProgress = (res: { status: number; body: any }) => {
    expect(res.status).toBe(409);
    expect(res.body).toEqual({
      error: { message: expect.stringMatching(/^This alert cannot be redelivered now: /), type: 'conflict_error', code: 'delivery_in_progress', param: null },
    });
  };

  it('409 while a redelivery of the alert is queued, running or waiting for a retry; of concurrent requests exactly one is queued', async () => {
    const { hook, budget, first } = await crossed([200, 'hang', 'hang']);
    expect(first.status).toBe('succeeded');

    const burst = await Promise.all(Array.from({ length: 6 }, () => redeliver(first.id)));
    expect(burst.map((r) => r.status).sort()).toEqual([202, 409, 409, 409, 409, 409]);
    for (const res of burst.filter((r) => r.status === 409)) expectInProgress(res);
    const accepted = burst.find((r) => r.status === 202)!.body;
    expect(accepted).toMatchObject({ trigger: 'redelivery', status: 'pending', attempt: 1, alert_id: first.alert_id });

    // Running (its receiver hangs): still refused.
    await waitFor(() => hook.requests.length === 2, 'the redelivery to reach the receiver');
    expectInProgress(await redeliver(first.id));
    // Timed out, its retry due in ten minutes: still one sequence under way, still refused.
    await waitFor(async () => (await deliveries(budget.id)).find((d) => d.id === accepted.id && d.status === 'failed' && d.next_retry_at !== null), 'the timeout');
    expectInProgress(await redeliver(first.id));
    expectInProgress(await redeliver(accepted.id));

    const redeliveries = (await deliveries(budget.id)).filter((d) => d.trigger === 'redelivery');
    expect(redeliveries.map((d) => d.id)).toEqual([accepted.id]); // the refused requests left no rows
    expect(hook.requests).toHaveLength(2);
  });

  it("409 while the alert's own delivery waits for a retry", async () => {
    const { first } = await crossed([500]);
    expect(first).toMatchObject({ status: 'failed', status_code: 500 });
    expect(first.next_retry_at).not.toBeNull();
    expectInProgress(await redeliver(first.id));
  });

  it('once a redelivery has ended, the next one is accepted', async () => {
    const { hook, budget, first } = await crossed([200, 200, 200]);
    const one = await redeliver(first.id);
    expect(one.status).toBe(202);
    await waitFor(async () => (await deliveries(budget.id)).find((d) => d.id === one.body.id && d.status === 'succeeded'), 'the first redelivery');
    await waitFor(async () => (await redeliver(first.id)).status === 202, 'the second redelivery to be accepted');
    await waitFor(() => hook.requests.length === 3, 'the second redelivery');
    expect(new Set(hook.requests.map((r) => r.headers['webhook-id']))).toEqual(new Set([first.alert_id]));
  });

  it('a delivery job that fails for good is logged with its queue, name and id, without the URL, and counted', async () => {
    const before = failedCount(await metricsText());
    const { budget, hook } = await crossed([410]);
    const [alert] = await waitFor(async () => {
      const rows = await alertRows(t, budget.id);
      return rows[0]?.state === 'failed' ? rows : null;
    }, 'the alert to fail');
    await waitFor(async () => failedCount(await metricsText()) === before + 1, 'the failed job to be counted');
    const line = await waitFor(() => t.logs.find((l) => l.includes('"msg":"Job failed"') && l.includes(alert.id)), 'the log line');
    expect(JSON.parse(line)).toMatchObject({ level: 'warn', context: 'Jobs', queue: 'alerts-deliver', job: 'deliver', jobId: `deliver-${alert.id}` });
    expect(line).not.toContain(hook.url);
    expect(line).not.toContain(`127.0.0.1:${hook.port}`);
    expect(line).not.toContain('whsec_');
  });

  const metricsText = async () => (await t.get('/metrics', { key: null })).text;
  const failedCount = (text: string) => Number(/^tally_jobs_failed_total\{queue="alerts-deliver"\} (\d+)$/m.exec(text)?.[1] ?? 'NaN');
});

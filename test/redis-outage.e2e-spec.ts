import { getQueueToken } from '@nestjs/bullmq';
import { backdateBudget } from './helpers/alerts';
import { Queue } from 'bullmq';
import { AlertEvaluatorService } from '../src/alerts/alert-evaluator.service';
import { AlertQueue, EVALUATE_ALL_SCHEDULER_ID } from '../src/alerts/alert-jobs';
import { budgetWindow, formatWindow } from '../src/budgets/budget-window';
import { alertRows } from './helpers/alerts';
import { startPrivateRedis, PrivateRedis } from './helpers/private-redis';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { ingest, ingestOk, record } from './helpers/usage';
import { waitFor } from './helpers/wait-for';
import { startReceiver, WebhookReceiver } from './helpers/webhook-receiver';

const DAY_MS = 86_400_000;
const now = () => Math.floor(Date.now() / 1000);
/** A monthly token budget blocking at 100 % of `limit` tokens. */
const blocking = (limit: number, extra: Record<string, unknown> = {}) => ({ period: 'monthly', limit_kind: 'tokens', limit, thresholds: [{ pct: 100, action: 'block' }], ...extra });

/** Issue 11, point 5: Redis down, hung, flushed; each test on a redis-server of its own. */
describe('Redis outage: 503 at once, ingest goes on, the work it could not enqueue is repaired', () => {
  let redis: PrivateRedis;
  let t: TestApp;
  let hook: WebhookReceiver;
  let ingestKey: string;
  let org: Awaited<ReturnType<typeof seedOrg>>;
  const check = (keyId: string) => t.post('/api/v1/llm/budgets/check', { api_key_id: keyId }, { key: ingestKey });

  beforeAll(async () => {
    redis = await startPrivateRedis();
    t = await startTestApp({ REDIS_URL: redis.url, ALERT_EVALUATION_INTERVAL_MS: '500', LOG_LEVEL: 'warn' });
    hook = await startReceiver();
    ingestKey = (await createSystemKey(t, 'ingest')).key;
    org = await seedOrg(t, 'Outage');
  });
  afterEach(() => jest.restoreAllMocks());
  afterAll(async () => {
    redis.resume();
    if (!(await redis.command('PING').catch(() => false))) await redis.start();
    await hook.close();
    await t.close();
    await redis.close();
  });

  it('while Redis is down or hung the check answers 503 redis_unavailable with Retry-After; ingest answers 200; both repaired after', async () => {
    // BullMQ writes the errors of queues and workers nobody listens to with console.error.
    const stderr = jest.spyOn(console, 'error');
    const key = await org.make('member');
    const daily = await t.put(`/api/v1/llm/budgets/apikey/${key.id}`, { period: 'daily', limit_kind: 'tokens', limit: 100, thresholds: [{ pct: 50, action: 'alert' }], webhook_url: hook.url });
    await backdateBudget(t, daily.body.id); // it existed yesterday (the late record's window)
    expect(daily.status).toBe(200);
    expect((await check(key.id)).body.allowed).toBe(true);

    redis.pause(); // hung: connections open, no answers
    // The state cached in memory is trusted only while the subscription answers (checked twice a second).
    const hung = await waitFor(async () => {
      const res = await check(key.id);
      return res.status === 503 ? res : undefined;
    }, 'the check to stop trusting its memory');
    expect(hung.status).toBe(503);
    expect(hung.body.error).toMatchObject({ code: 'redis_unavailable', type: 'service_unavailable_error' });
    expect(Number(hung.headers.get('retry-after'))).toBeGreaterThan(0);

    await redis.stop(); // down (and, without persistence, empty when it is back)
    const down = await check(key.id);
    expect(down.status).toBe(503);
    expect(down.body.error.code).toBe('redis_unavailable');
    expect(down.headers.get('retry-after')).toBe('1');

    // A late record crossing yesterday's threshold, ingested while Redis is down: stored, and its
    // evaluation kept until Redis is back.
    const yesterday = budgetWindow('daily', new Date(Date.now() - DAY_MS));
    const res = await ingest(t, ingestKey, [record(key.id, { created_at: Math.floor(yesterday.start.getTime() / 1000) + 3600, input_tokens: 70, output_tokens: 0 })]);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ accepted: 1 });

    // Meanwhile the queues' connections fail their reconnects: logged, not written to stderr.
    const queueWarning = () => t.logs.some((line) => line.includes('"context":"Queues"'));
    await waitFor(queueWarning, 'a warning of the queues while Redis is down');

    await redis.start();
    await waitFor(async () => (await check(key.id)).status === 200, 'the check to answer again');
    const request = await waitFor(() => hook.requests.find((r) => r.body.includes(daily.body.id)), 'the alert of the record ingested during the outage');
    expect(JSON.parse(request.body).data.window).toBe(formatWindow(yesterday));
    await waitFor(async () => (await t.dataSource.query(`SELECT count(*)::int AS n FROM budget_evaluation_requests`))[0].n === 0, 'the backlog to be drained');

    // The queues' and workers' lost connections were logged as structured warnings, a few lines at most.
    expect(stderr).not.toHaveBeenCalled();
    const warnings = t.logs.filter((line) => line.includes('"context":"Queues"')).map((line) => JSON.parse(line));
    expect(warnings.length).toBeLessThanOrEqual(4); // one per queue and side (two queues, queue and worker) in 30 s
    expect(warnings.every((w) => w.level === 'warn' && ['queue', 'worker'].includes(w.side))).toBe(true);
  });

  it('after FLUSHDB with workers running: the scheduler is back, block states rebuilt, pending alerts re-enqueued', async () => {
    const blocked = await org.make('member');
    expect((await t.put(`/api/v1/llm/budgets/apikey/${blocked.id}`, blocking(10))).status).toBe(200);
    await ingestOk(t, ingestKey, [record(blocked.id, { created_at: now(), input_tokens: 20, output_tokens: 0 })]);
    expect((await check(blocked.id)).body.allowed).toBe(false);

    // An alert whose first attempt failed: pending, its retry (a delayed job) due in 10 minutes.
    const receiver = await startReceiver({ replies: [500] });
    const alerting = await org.make('member');
    const budget = await t.put(`/api/v1/llm/budgets/apikey/${alerting.id}`, { period: 'monthly', limit_kind: 'tokens', limit: 10, thresholds: [{ pct: 50, action: 'alert' }], webhook_url: receiver.url });
    const deliver = t.app.get<Queue>(getQueueToken(AlertQueue.Deliver));
    const retryBase = t.config.webhookRetryBaseMs;
    try {
      (t.config as { webhookRetryBaseMs: number }).webhookRetryBaseMs = 600_000;
      await ingestOk(t, ingestKey, [record(alerting.id, { created_at: now(), input_tokens: 6, output_tokens: 0 })]);
      await waitFor(() => receiver.requests.length === 1, 'the failed first attempt');
      await waitFor(async () => (await deliver.getJobCounts('delayed')).delayed >= 1, 'the retry to be scheduled');
    } finally {
      (t.config as { webhookRetryBaseMs: number }).webhookRetryBaseMs = retryBase;
    }
    expect((await alertRows(t, budget.body.id)).map((a) => a.state)).toEqual(['pending']);

    await redis.flush();

    const evaluate = t.app.get<Queue>(getQueueToken(AlertQueue.Evaluate));
    await waitFor(() => evaluate.getJobScheduler(EVALUATE_ALL_SCHEDULER_ID), 'the evaluate-all scheduler to be back');
    await waitFor(async () => (await check(blocked.id)).body.allowed === false, 'the block state to be rebuilt');
    await waitFor(() => receiver.requests.length >= 2, 'the pending alert to be delivered');
    await waitFor(async () => (await alertRows(t, budget.body.id))[0].state === 'delivered', 'the alert to be settled');
    expect(new Set(receiver.requests.map((r) => r.headers['webhook-id'])).size).toBe(1);
    await receiver.close();
  });

  it('a redelivery asked while Redis is down answers 503 redis_unavailable at once, and queues nothing when Redis is back', async () => {
    const key = await org.make('member');
    const thresholds = [
      { pct: 50, action: 'alert' },
      { pct: 80, action: 'alert' },
    ];
    const budget = (await t.put(`/api/v1/llm/budgets/apikey/${key.id}`, { period: 'daily', limit_kind: 'tokens', limit: 100, thresholds, webhook_url: hook.url })).body;
    await ingest(t, ingestKey, [record(key.id, { created_at: Math.floor(Date.now() / 1000), input_tokens: 70, output_tokens: 0 })]);
    const deliveries = async () => (await t.get(`/api/v1/llm/budgets/${budget.id}/deliveries`)).body.data as Array<{ id: string; trigger: string; status: string }>;
    const delivered = await waitFor(async () => (await deliveries()).find((d) => d.trigger === 'alert' && d.status === 'succeeded'), 'the alert to be delivered');

    await redis.stop();
    const res = await t.post(`/api/v1/llm/budgets/deliveries/${delivered.id}/redeliver`);
    expect(res.status).toBe(503);
    expect(res.body.error).toMatchObject({ code: 'redis_unavailable', type: 'service_unavailable_error' });
    // A crossing while Redis is down: its alert is delivered once Redis is back (the workers work again).
    await ingest(t, ingestKey, [record(key.id, { created_at: Math.floor(Date.now() / 1000), input_tokens: 15, output_tokens: 0 })]);
    await redis.start();
    await waitFor(async () => (await deliveries()).some((d) => d.trigger === 'alert' && d.id !== delivered.id && d.status === 'succeeded'), 'the alert of the crossing during the outage');
    expect((await deliveries()).filter((d) => d.trigger === 'redelivery')).toEqual([]);
  });

  it('evaluate-all runs never overlap, across callers', async () => {
    const evaluator = t.app.get(AlertEvaluatorService);
    // The worker's scheduled runs (every 500 ms) take the same lock: at most one of these runs.
    const results = await Promise.all([evaluator.evaluateAll({ waitMs: 0 }), evaluator.evaluateAll({ waitMs: 0 }), evaluator.evaluateAll({ waitMs: 0 })]);
    expect(results.filter((r) => r.ran).length).toBeLessThanOrEqual(1);
    expect(results.filter((r) => !r.ran).length).toBeGreaterThanOrEqual(2);
    // One that waits for the lock runs once the others are done.
    expect(await evaluator.evaluateAll({ waitMs: 10_000 })).toMatchObject({ ran: true });
  });
});

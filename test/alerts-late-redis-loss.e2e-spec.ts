import { AlertEvaluatorService } from '../src/alerts/alert-evaluator.service';
import { EvaluationBacklog } from '../src/alerts/evaluation-backlog';
import { alertRows, backdateBudget } from './helpers/alerts';
import { startPrivateRedis, PrivateRedis } from './helpers/private-redis';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { ingestOk, record } from './helpers/usage';

/**
 * A late record's crossing (a window before today: maybe no budget's current or previous window,
 * which are all evaluate-all looks at) was evaluated only by its BullMQ job: Redis losing its data
 * before a worker ran the job lost the alert for good (review finding). Such days go to the
 * PostgreSQL backlog as well, which evaluate-all drains.
 */
describe('late crossings survive Redis losing its data before a worker evaluates them', () => {
  let redis: PrivateRedis;
  let api: TestApp;
  let worker: TestApp | undefined;
  beforeAll(async () => {
    redis = await startPrivateRedis();
    // The API alone: its evaluation jobs wait in Redis, no worker takes them.
    api = await startTestApp({ REDIS_URL: redis.url, PROCESS_ROLE: 'api', LOG_LEVEL: 'warn' });
  });
  afterAll(async () => {
    await worker?.close();
    await api.close();
    await redis.close();
  });

  it('alerts crossings five and two days back, of key budgets and an end user\'s, after a FLUSHDB that took their jobs', async () => {
    const ingestKey = (await createSystemKey(api, 'ingest')).key;
    const org = await seedOrg(api, 'LateLoss');
    const budget = (await api.put(`/api/v1/llm/budgets/apikey/${org.member.id}`, { period: 'daily', limit_kind: 'tokens', limit: 100, thresholds: [{ pct: 100, action: 'alert' }] })).body;
    await backdateBudget(api, budget.id);
    // An end user's budget, which only the record's user_id reaches.
    const userBudget = (await api.put(`/api/v1/llm/budgets/org/${org.org.id}/users/ann`, { period: 'daily', limit_kind: 'tokens', limit: 100, thresholds: [{ pct: 100, action: 'alert' }] })).body;
    await backdateBudget(api, userBudget.id);
    const fiveDaysAgo = Math.floor(Date.now() / 1000) - 5 * 86_400;
    await ingestOk(api, ingestKey, [record(org.member.id, { created_at: fiveDaysAgo, input_tokens: 120, output_tokens: 0, user_id: 'ann' })]);
    // The day before yesterday (UTC), at noon: neither the current nor the previous daily window.
    const other = await org.make('member');
    const otherBudget = (await api.put(`/api/v1/llm/budgets/apikey/${other.id}`, { period: 'daily', limit_kind: 'tokens', limit: 100, thresholds: [{ pct: 100, action: 'alert' }] })).body;
    await backdateBudget(api, otherBudget.id);
    const twoDaysAgoNoon = Math.floor(Date.now() / 86_400_000) * 86_400 - 2 * 86_400 + 12 * 3600;
    await ingestOk(api, ingestKey, [record(other.id, { created_at: twoDaysAgoNoon, input_tokens: 120, output_tokens: 0 })]);
    // Today's records are in every budget's current window: not kept twice.
    await ingestOk(api, ingestKey, [record(org.member.id, { created_at: Math.floor(Date.now() / 1000), input_tokens: 1, output_tokens: 0 })]);
    const day = (seconds: number) => new Date(seconds * 1000).toISOString().slice(0, 10);
    expect(await api.dataSource.query('SELECT days FROM budget_evaluation_requests ORDER BY id')).toEqual([{ days: [day(fiveDaysAgo)] }, { days: [day(twoDaysAgoNoon)] }]);
    await redis.command('FLUSHDB');

    worker = await startTestApp(
      { REDIS_URL: redis.url, REDIS_PREFIX: api.config.redisPrefix, SECRETS_KEY: api.config.secretsKey!.toString('hex'), ALERT_EVALUATION_INTERVAL_MS: '3600000', LOG_LEVEL: 'warn' },
      { database: api.db },
    );
    await worker.app.get(AlertEvaluatorService).evaluateAll();
    for (const [id, at] of [[budget.id, fiveDaysAgo], [userBudget.id, fiveDaysAgo], [otherBudget.id, twoDaysAgoNoon]] as const) {
      const rows = await alertRows(worker, id);
      expect(rows.map((r) => [(r as unknown as { event_type: string }).event_type, Number(r.threshold_pct), day(new Date(r.window_start).getTime() / 1000)])).toEqual([
        ['budget.threshold.crossed', 100, day(at)],
      ]);
    }
    expect(await api.dataSource.query('SELECT count(*)::int AS n FROM budget_evaluation_requests')).toEqual([{ n: 0 }]);
  });

  it('one drain of the backlog ends: rows kept while it runs wait for the next evaluate-all', async () => {
    const backlog = api.app.get(EvaluationBacklog);
    const entry = { orgId: 'org_drain', apiKeyIds: ['key_drain'], teamIds: [], userIds: [], days: ['2026-11-01'] };
    for (let i = 0; i < 3; i++) await backlog.add(entry);
    let seen = 0;
    await backlog.drain(async () => {
      seen++;
      await backlog.add(entry); // late records keep coming
      return 0;
    });
    expect(seen).toBe(3);
    expect(await api.dataSource.query(`SELECT count(*)::int AS n FROM budget_evaluation_requests WHERE org_id = 'org_drain'`)).toEqual([{ n: 3 }]);
    await api.dataSource.query(`DELETE FROM budget_evaluation_requests WHERE org_id = 'org_drain'`);
  });
});

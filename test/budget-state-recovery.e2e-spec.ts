import { AlertEvaluatorService } from '../src/alerts/alert-evaluator.service';
import { BlockStateStore } from '../src/budgets/budget-block-store';
import { startPrivateRedis, PrivateRedis } from './helpers/private-redis';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { ingestOk, record } from './helpers/usage';

const now = () => Math.floor(Date.now() / 1000);
/** A monthly token budget blocking at 100 % of `limit` tokens. */
const blocking = (limit: number) => ({ period: 'monthly', limit_kind: 'tokens', limit, thresholds: [{ pct: 100, action: 'block' }] });

/**
 * After Redis lost its data and before the worker's evaluate-all rebuilt every block state, a
 * process that had never read a scope's state took "no state" for "nothing blocks": a blocked key
 * was allowed by the check and the gate for up to ALERT_EVALUATION_INTERVAL_MS. A missing state
 * counts as "no budget" only once a rebuild has completed on the data Redis holds.
 */
describe('block state after Redis lost its data, before any rebuild', () => {
  let redis: PrivateRedis;
  let t: TestApp;
  let other: TestApp;
  let ingestKey: string;
  let org: Awaited<ReturnType<typeof seedOrg>>;
  const checkOn = (app: TestApp, body: Record<string, unknown>) => app.post('/api/v1/llm/budgets/check', body, { key: ingestKey });
  const stateKey = (scope: string, id: string) => `${t.config.redisPrefix}:budget-blocks:${scope}:${id}`;
  const rebuiltKey = () => `${t.config.redisPrefix}:budget-blocks:rebuilt`;

  beforeAll(async () => {
    redis = await startPrivateRedis();
    // The worker's evaluate-all runs once an hour here: nothing rebuilds the states during a test.
    t = await startTestApp({ REDIS_URL: redis.url, ALERT_EVALUATION_INTERVAL_MS: '3600000', LOG_LEVEL: 'warn' });
    // A second API process on the same database and Redis, with a memory of its own.
    other = await startTestApp(
      { REDIS_URL: redis.url, REDIS_PREFIX: t.config.redisPrefix, SECRETS_KEY: t.config.secretsKey!.toString('hex'), PROCESS_ROLE: 'api', LOG_LEVEL: 'warn' },
      { database: t.db },
    );
    ingestKey = (await createSystemKey(t, 'ingest')).key;
    org = await seedOrg(t, 'Recovery');
  });
  afterAll(async () => {
    await other.close();
    await t.close();
    await redis.close();
  });

  it('answers a blocked key blocked from PostgreSQL, writes the states of budgeted scopes only, and trusts missing states again after a rebuild', async () => {
    const [blocked, underLimit, unbudgeted] = await Promise.all([org.make('member'), org.make('member'), org.make('member')]);
    const budget = (await t.put(`/api/v1/llm/budgets/apikey/${blocked.id}`, blocking(10))).body;
    await t.put(`/api/v1/llm/budgets/apikey/${underLimit.id}`, blocking(1000));
    const userBudget = await t.put(`/api/v1/llm/budgets/org/${org.org.id}/users/${encodeURIComponent('ann@example.com')}`, blocking(10));
    expect(userBudget.status).toBe(200);
    await ingestOk(t, ingestKey, [
      record(blocked.id, { created_at: now(), input_tokens: 20, output_tokens: 0 }),
      record(underLimit.id, { created_at: now(), input_tokens: 20, output_tokens: 0 }),
      record(unbudgeted.id, { created_at: now(), input_tokens: 30, output_tokens: 0, user_id: 'ann@example.com' }),
    ]);
    expect((await t.app.get(AlertEvaluatorService).evaluateAll()).ran).toBe(true);
    expect(await redis.command('GET', rebuiltKey())).not.toBeNull();

    await redis.command('FLUSHDB');
    // `other` never read these scopes: its answers come from PostgreSQL, not from "no state".
    const denied = await checkOn(other, { api_key_id: blocked.id });
    expect(denied.body).toMatchObject({ allowed: false, blocked_by: [{ budget_id: budget.id, scope: 'apikey', pct: 200 }] });
    expect((await checkOn(other, { api_key_id: underLimit.id })).body).toEqual({ allowed: true, blocked_by: [] });
    expect((await checkOn(other, { api_key_id: unbudgeted.id })).body).toEqual({ allowed: true, blocked_by: [] });
    const byUser = await checkOn(other, { api_key_id: unbudgeted.id, user_id: 'ann@example.com' });
    expect(byUser.body).toMatchObject({ allowed: false, blocked_by: [{ budget_id: userBudget.body.id, scope: 'user', pct: 300 }] });
    // The gate answers the same.
    const gate = await other.get('/api/v1/llm/budgets/authorize', { key: blocked.key });
    expect(gate.status).toBe(429);

    // Budgeted scopes got their state back for every process; scopes without a budget got no key.
    expect(JSON.parse((await redis.command('GET', stateKey('apikey', blocked.id))) as string).blocks).toHaveLength(1);
    expect(JSON.parse((await redis.command('GET', stateKey('apikey', underLimit.id))) as string).blocks).toEqual([]);
    expect(await redis.command('GET', stateKey('apikey', unbudgeted.id))).toBeNull();
    expect(await redis.command('GET', stateKey('org', org.org.id))).toBeNull();
    // ...and `t`, which had read them before the loss, agrees.
    expect((await checkOn(t, { api_key_id: blocked.id })).body.allowed).toBe(false);

    // A complete rebuild: missing states mean "no budget" again (no PostgreSQL read for them).
    expect((await t.app.get(AlertEvaluatorService).evaluateAll()).ran).toBe(true);
    expect(await redis.command('GET', rebuiltKey())).not.toBeNull();
    expect((await checkOn(other, { api_key_id: blocked.id })).body.allowed).toBe(false);
  });

  it('a rebuild during which Redis lost its data does not mark the states rebuilt', async () => {
    const store = t.app.get(BlockStateStore);
    const token = await store.beginRebuild();
    await redis.command('FLUSHDB');
    expect(await store.endRebuild(token)).toBe(false);
    expect(await redis.command('GET', rebuiltKey())).toBeNull();
    // A rebuild that ran on the data Redis still holds does.
    expect(await store.endRebuild(await store.beginRebuild())).toBe(true);
    expect(await redis.command('GET', rebuiltKey())).not.toBeNull();
  });
});

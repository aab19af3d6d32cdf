import Redis from 'ioredis';
import { Logger } from '@nestjs/common';
import { CoherentCache } from '../src/redis/coherent-cache';
import { startPrivateRedis, PrivateRedis } from './helpers/private-redis';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { ingestOk, record } from './helpers/usage';
import { waitFor } from './helpers/wait-for';
import { AlertEvaluatorService } from '../src/alerts/alert-evaluator.service';

const now = () => Math.floor(Date.now() / 1000);
/** A monthly token budget blocking at 100 % of `limit` tokens. */
const blocking = (limit: number) => ({ period: 'monthly', limit_kind: 'tokens', limit, thresholds: [{ pct: 100, action: 'block' }] });

/** Issue 11, point 4: block state you can trust. */
describe('block state: deleted or raised budgets stop blocking, also when Redis failed during the change', () => {
  let redis: PrivateRedis;
  let t: TestApp;
  let other: TestApp;
  let ingestKey: string;
  let org: Awaited<ReturnType<typeof seedOrg>>;
  const checkOn = (app: TestApp, keyId: string) => app.post('/api/v1/llm/budgets/check', { api_key_id: keyId }, { key: ingestKey });

  beforeAll(async () => {
    // Persistent: when it comes back it still holds the state written before it went down.
    redis = await startPrivateRedis({ persist: true });
    t = await startTestApp({ REDIS_URL: redis.url, ALERT_EVALUATION_INTERVAL_MS: '500', LOG_LEVEL: 'warn' });
    // A second API process on the same database and Redis (its own memory cache).
    other = await startTestApp(
      { REDIS_URL: redis.url, REDIS_PREFIX: t.config.redisPrefix, SECRETS_KEY: t.config.secretsKey!.toString('hex'), PROCESS_ROLE: 'api', LOG_LEVEL: 'warn' },
      { database: t.db },
    );
    ingestKey = (await createSystemKey(t, 'ingest')).key;
    org = await seedOrg(t, 'Trust');
  });
  afterAll(async () => {
    await other.close();
    await t.close();
    await redis.close();
  });

  it('a budget deleted and one raised while Redis is down stop blocking once it is back, on every process, and stay stopped', async () => {
    const [deleted, raised] = await Promise.all([org.make('member'), org.make('member')]);
    const deletedBudget = await t.put(`/api/v1/llm/budgets/apikey/${deleted.id}`, blocking(10));
    await t.put(`/api/v1/llm/budgets/apikey/${raised.id}`, blocking(10));
    await ingestOk(t, ingestKey, [deleted, raised].map((k) => record(k.id, { created_at: now(), input_tokens: 20, output_tokens: 0 })));
    for (const app of [t, other]) {
      for (const key of [deleted, raised]) expect((await checkOn(app, key.id)).body.allowed).toBe(false);
    }

    await redis.stop();
    // The changes are stored (PostgreSQL is the truth); their state writes fail.
    expect((await t.delete(`/api/v1/llm/budgets/${deletedBudget.body.id}`)).status).toBe(200);
    const raise = await t.put(`/api/v1/llm/budgets/apikey/${raised.id}`, blocking(1000));
    expect(raise.status).toBe(200);
    expect(raise.body.spend.pct).toBe(2);
    expect((await checkOn(t, deleted.id)).status).toBe(503);

    await redis.start(); // with the stale "blocked" states it had
    for (const app of [t, other]) {
      for (const key of [deleted, raised]) {
        await waitFor(async () => (await checkOn(app, key.id)).body.allowed === true, `${key.id} to be allowed on ${app === t ? 'the changing' : 'the other'} process`);
      }
    }
    // Stays stopped: another repair pass and another ingest change nothing.
    await t.app.get(AlertEvaluatorService).evaluateAll();
    await ingestOk(t, ingestKey, [raised].map((k) => record(k.id, { created_at: now(), input_tokens: 1, output_tokens: 0 })));
    for (const app of [t, other]) {
      for (const key of [deleted, raised]) expect((await checkOn(app, key.id)).body).toEqual({ allowed: true, blocked_by: [] });
    }
  });

  it('a state rewritten with the same blocks is not dropped from any memory; a change is, on every process', async () => {
    const key = await org.make('member');
    await t.put(`/api/v1/llm/budgets/apikey/${key.id}`, blocking(100));
    const stateKey = `${t.config.redisPrefix}:budget-blocks:apikey:${key.id}`;
    const listener = new Redis(redis.url);
    const published: string[] = [];
    listener.on('message', (_channel, payload: string) => published.push(...payload.split('\n')));
    await listener.subscribe(`${t.config.redisPrefix}:budget-blocks:changed`);
    try {
      const version = async () => JSON.parse((await redis.command('GET', stateKey)) as string).v as number;
      const spend = async (tokens: number) => {
        const before = await version();
        await ingestOk(t, ingestKey, [record(key.id, { created_at: now(), input_tokens: tokens, output_tokens: 0 })]);
        expect(await version()).toBeGreaterThan(before); // every ingest rewrites the state...
      };
      expect((await checkOn(other, key.id)).body.allowed).toBe(true); // cached in the other process
      await spend(40);
      await spend(40); // ...but 80 % blocks nothing new: no process drops its copy
      await listener.ping(); // everything published before this answer has arrived
      expect(published.filter((k) => k === stateKey)).toEqual([]);
      expect((await checkOn(other, key.id)).body.allowed).toBe(true);

      await spend(40); // 120 %: blocked, published, and the other process answers so at once
      await waitFor(() => published.includes(stateKey), 'the change to be published');
      expect((await checkOn(other, key.id)).body).toMatchObject({ allowed: false, blocked_by: [{ scope: 'apikey', pct: 120 }] });
    } finally {
      listener.disconnect();
    }
  });

  it('after Redis lost every state (FLUSHDB), a deleted budget stops blocking at once on every process', async () => {
    const key = await org.make('member');
    const budget = (await t.put(`/api/v1/llm/budgets/apikey/${key.id}`, blocking(10))).body;
    await ingestOk(t, ingestKey, [record(key.id, { created_at: now(), input_tokens: 20, output_tokens: 0 })]);
    // Both processes hold the blocked state in memory.
    for (const app of [t, other]) expect((await checkOn(app, key.id)).body.allowed).toBe(false);
    await redis.command('FLUSHDB');
    expect((await t.delete(`/api/v1/llm/budgets/${budget.id}`)).status).toBe(200);
    // No state is stored any more, and the new one blocks nothing: still a change for the copies.
    for (const app of [t, other]) {
      await waitFor(async () => (await checkOn(app, key.id)).body.allowed === true || null, `the deleted budget to stop blocking on ${app === t ? 'the changing' : 'the other'} process`, 5_000);
    }
  });

  it('a revoke sends its message on every call, so a retry after a failed one reaches the other processes', async () => {
    const key = await org.make('member');
    const listener = new Redis(redis.url);
    const revoked: string[] = [];
    listener.on('message', (_channel, payload: string) => revoked.push(payload));
    await listener.subscribe(`${t.config.redisPrefix}:apikeys:revoked`);
    try {
      expect((await t.delete(`/api/v1/api-keys/${key.id}`)).status).toBe(200);
      // The client retries (say the first answer was a 503 after the row was stored): sent again.
      expect((await t.delete(`/api/v1/api-keys/${key.id}`)).status).toBe(200);
      await listener.ping();
      await waitFor(() => revoked.filter((p) => p.includes(key.id)).length >= 2 || null, 'both revocations to be sent', 5_000);
    } finally {
      listener.disconnect();
    }
  });

  it('a revoked key is never allowed: allowed false, reason api_key_revoked, on every process', async () => {
    const key = await org.make('member');
    expect((await checkOn(other, key.id)).body).toEqual({ allowed: true, blocked_by: [] });
    expect((await t.delete(`/api/v1/api-keys/${key.id}`)).status).toBe(200);
    for (const app of [t, other]) {
      const res = await waitFor(async () => {
        const answer = await checkOn(app, key.id);
        return answer.body.allowed === false ? answer : undefined;
      }, 'the revocation to reach the check');
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ allowed: false, reason: 'api_key_revoked', blocked_by: [] });
    }
  });
});

describe('coherent cache: a lost subscription never leaves a stale entry cached', () => {
  let redis: PrivateRedis;
  let client: Redis;
  let cache: CoherentCache<string>;

  beforeAll(async () => {
    redis = await startPrivateRedis();
    client = new Redis(redis.url);
    cache = new CoherentCache<string>(client, {
      channel: 'test:changed',
      onMessage: (payload) => cache.drop([payload]),
      ttlMs: 60_000,
      maxEntries: 100,
      logger: new Logger('test'),
      lostWarning: 'lost',
    });
    await cache.start();
  });
  afterAll(async () => {
    await cache.stop();
    client.disconnect();
    await redis.close();
  });

  it('a read that started before the subscription was lost is not cached after it is back', async () => {
    const snapshot = cache.snapshot(); // a read of the source starts here...
    await redis.command('CLIENT', 'KILL', 'TYPE', 'pubsub'); // ...the subscription drops (messages may be missed)...
    const probe = () => {
      cache.set('probe', 'x', cache.snapshot());
      return cache.get('probe') === 'x';
    };
    await waitFor(() => !probe(), 'the loss to be noticed');
    await waitFor(() => {
      cache.set('probe', 'x', cache.snapshot());
      return cache.get('probe') === 'x';
    }, 'the subscription to be back');
    cache.set('entry', 'read before the loss', snapshot); // ...and the read lands after it is back.
    expect(cache.get('entry')).toBeUndefined();
  });
});

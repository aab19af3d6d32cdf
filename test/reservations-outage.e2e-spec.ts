import { blockingBudget, counters, RESERVATIONS, reservationBody, reserve } from './helpers/reservations';
import { PrivateRedis, startPrivateRedis } from './helpers/private-redis';
import { createSystemKey, HttpResult, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { waitFor } from './helpers/wait-for';

function expectRedisUnavailable(res: HttpResult): void {
  expect(res.status).toBe(503);
  expect(res.body.error).toMatchObject({ code: 'redis_unavailable', type: 'service_unavailable_error' });
  expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
}

/**
 * Issue 11's promise for Redis-backed calls, kept by reservations: while Redis is hung or down,
 * create and release answer 503 `redis_unavailable` with Retry-After (not a hang, not a 500) and
 * change nothing; reads and revoked keys answer from PostgreSQL as the check does; once Redis is
 * back (empty), the counters are rebuilt from PostgreSQL and the cap holds.
 */
describe('reservations while Redis is hung or down', () => {
  let redis: PrivateRedis;
  let t: TestApp;
  let ingestKey: string;

  beforeAll(async () => {
    redis = await startPrivateRedis();
    // API only: reservations are answered by the API (and a worker's BullMQ connections make its
    // shutdown right after a Redis restart slow, which is not what this test is about).
    t = await startTestApp({ REDIS_URL: redis.url, PROCESS_ROLE: 'api', LOG_LEVEL: 'warn' });
    ingestKey = (await createSystemKey(t, 'ingest')).key;
  });
  afterAll(async () => {
    redis.resume();
    if (!(await redis.command('PING').catch(() => false))) await redis.start();
    await t.close();
    await redis.close();
  });

  it('503 redis_unavailable with Retry-After for create and release, nothing changed; GET and revoked keys answer; the cap holds after', async () => {
    const org = await seedOrg(t, 'ResOutage');
    const budget = (await t.put(`/api/v1/llm/budgets/apikey/${org.member.id}`, blockingBudget('tokens', 1000))).body;
    const revoked = await org.make('member');
    expect((await t.delete(`/api/v1/api-keys/${revoked.id}`)).status).toBe(200);
    const held = await reserve(t, ingestKey, reservationBody(org.member.id, { input_tokens: 100, max_output_tokens: 500 }));
    expect(held.body).toMatchObject({ allowed: true, granted_output_tokens: 500 });
    const check = () => t.post('/api/v1/llm/budgets/check', { api_key_id: org.member.id }, { key: ingestKey });

    redis.pause(); // hung: connections open, no answers
    const body = reservationBody(org.member.id, { input_tokens: 100, max_output_tokens: 100 });
    expectRedisUnavailable(await t.post(RESERVATIONS, body, { key: ingestKey }));
    expectRedisUnavailable(await t.post(`${RESERVATIONS}/${held.body.id}/release`, undefined, { key: ingestKey }));
    // Nothing stored for the refused request, the hold still held; reads answer from PostgreSQL.
    expect(await t.dataSource.query('SELECT id FROM reservations WHERE request_id = $1', [body.request_id])).toEqual([]);
    const read = await t.get(`${RESERVATIONS}/${held.body.id}`, { key: ingestKey });
    expect(read.status).toBe(200);
    expect(read.body.status).toBe('held');
    // The check answers the same way (once it stops trusting its memory).
    expectRedisUnavailable(await waitFor(async () => ((await check()).status === 503 ? check() : undefined), 'the check to answer 503'));

    await redis.stop(); // down (and empty when it is back: no persistence)
    const down = await t.post(RESERVATIONS, body, { key: ingestKey });
    expectRedisUnavailable(down);
    expect(down.headers.get('retry-after')).toBe('1');
    expectRedisUnavailable(await t.post(`${RESERVATIONS}/${held.body.id}/release`, undefined, { key: ingestKey }));
    expectRedisUnavailable(await check());
    // A revoked key is refused without Redis, by reservations and the check alike.
    const revokedRes = await t.post(RESERVATIONS, reservationBody(revoked.id), { key: ingestKey });
    expect(revokedRes.status).toBe(200);
    expect(revokedRes.body).toMatchObject({ allowed: false, reason: 'api_key_revoked', denied_by: [] });
    const revokedCheck = await t.post('/api/v1/llm/budgets/check', { api_key_id: revoked.id }, { key: ingestKey });
    expect(revokedCheck.body).toEqual({ allowed: false, reason: 'api_key_revoked', blocked_by: [] });

    await redis.start();
    // Redis lost the counters: rebuilt from PostgreSQL (the live hold of 600 included) before anything is granted.
    const after = await waitFor(async () => {
      const res = await t.post(RESERVATIONS, reservationBody(org.member.id, { input_tokens: 100, max_output_tokens: 1000 }), { key: ingestKey });
      return res.status === 200 ? res : undefined;
    }, 'reservations to answer again');
    expect(after.body).toMatchObject({ allowed: true, granted_output_tokens: 300 });
    expect(after.body.budgets[0]).toMatchObject({ committed: '0', held: '1000', remaining: '0' });
    const released = await t.post(`${RESERVATIONS}/${held.body.id}/release`, undefined, { key: ingestKey });
    expect(released.status).toBe(200);
    expect(released.body.status).toBe('released');
    expect(await counters(t, org.org.id, budget.id)).toEqual({ committed: 0n, held: 400n });
  });

  it('an admission whose script ran after its 503 (Redis hung, then back) leaves its request id free for the retry; a retried release takes the hold away', async () => {
    const org = await seedOrg(t, 'ResHungThenBack');
    const budget = (await t.put(`/api/v1/llm/budgets/apikey/${org.member.id}`, blockingBudget('tokens', 1000))).body;
    const held = await reserve(t, ingestKey, reservationBody(org.member.id, { input_tokens: 100, max_output_tokens: 100 }));
    const body = reservationBody(org.member.id, { input_tokens: 100, max_output_tokens: 300 });

    redis.pause();
    expectRedisUnavailable(await t.post(RESERVATIONS, body, { key: ingestKey }));
    redis.resume(); // the admission's script runs now: its request id and its hold, no row
    await waitFor(async () => (await redis.command('PING')) === 'PONG', 'Redis to answer');
    // The gateway's retry of that request: decided afresh, not a 409 for a row that never comes.
    const retried = await waitFor(async () => {
      const res = await t.post(RESERVATIONS, body, { key: ingestKey });
      return res.status === 503 ? undefined : res;
    }, 'reservations to answer again');
    expect([retried.status, retried.body.status]).toEqual([200, 'held']);
    expect(await t.dataSource.query('SELECT count(*)::int AS n FROM reservations WHERE request_id = $1', [body.request_id])).toEqual([{ n: 1 }]);
    expect((await t.post(RESERVATIONS, body, { key: ingestKey })).body.id).toBe(retried.body.id);

    // A release whose row was stored but whose Redis step failed: the retry takes the hold away.
    const before = await counters(t, org.org.id, budget.id);
    await t.dataSource.query(`UPDATE reservations SET status = 'released', released_at = now() WHERE id = $1`, [held.body.id]);
    const released = await t.post(`${RESERVATIONS}/${held.body.id}/release`, undefined, { key: ingestKey });
    expect([released.status, released.body.status]).toEqual([200, 'released']);
    expect(await counters(t, org.org.id, budget.id)).toEqual({ committed: 0n, held: before!.held - 200n });
    // With Redis hung, a released reservation still answers its stored row (its holds are gone or expire).
    redis.pause();
    try {
      const again = await t.post(`${RESERVATIONS}/${held.body.id}/release`, undefined, { key: ingestKey });
      expect([again.status, again.body.status]).toEqual([200, 'released']);
    } finally {
      redis.resume();
    }
  });
});

import Redis from 'ioredis';
import { REDIS } from '../src/redis/redis.module';
import { guardRedis } from '../src/redis/redis-unavailable';
import { pauseThisProcess } from './helpers/pause';
import { startPrivateRedis, PrivateRedis } from './helpers/private-redis';
import { blockingBudget, counters, reservationBody, reserve } from './helpers/reservations';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { waitFor } from './helpers/wait-for';

const TIMEOUT_MS = 100;


/**
 * REDIS_COMMAND_TIMEOUT_MS bounds how long a call waits on a hung Redis, and nothing else. A pause
 * of the service's own process longer than the timeout is not an outage: the answers that arrived
 * during the pause are read before any timeout is declared. (ioredis' own timer fired first, and
 * `guardRedis` then refused every call on that client for a second: a CI run of the concurrency
 * spec failed so on a loaded machine.)
 */
describe('Redis command timeout: a hung Redis, not a paused process', () => {
  let redis: PrivateRedis;
  let t: TestApp;
  let client: Redis;
  let ingestKey: string;

  beforeAll(async () => {
    redis = await startPrivateRedis();
    t = await startTestApp({ REDIS_URL: redis.url, REDIS_COMMAND_TIMEOUT_MS: String(TIMEOUT_MS), LOG_LEVEL: 'warn' });
    client = t.app.get(REDIS);
    ingestKey = (await createSystemKey(t, 'ingest')).key;
  });
  afterAll(async () => {
    redis.resume();
    await t?.close();
    await redis?.close();
  });

  it('commands, pipelines and scripts in flight across a pause of 4× the timeout get their answers, and the next calls are served', async () => {
    const org = await seedOrg(t, 'Paused');
    const budget = (await t.put(`/api/v1/llm/budgets/apikey/${org.member.id}`, blockingBudget('tokens', 10_000))).body;
    await reserve(t, ingestKey, reservationBody(org.member.id)); // loads the budget's counters: 100 tokens held

    const inFlight = Promise.all([
      guardRedis(client, () => client.ping()),
      guardRedis(client, () => client.pipeline().echo('a').echo('b').exec()),
      counters(t, org.org.id, budget.id), // the reservations' read script, through the product's code
    ]);
    pauseThisProcess(4 * TIMEOUT_MS);
    expect(await inFlight).toEqual([
      'PONG',
      [
        [null, 'a'],
        [null, 'b'],
      ],
      { committed: 0n, held: 100n },
    ]);

    // Nothing was marked suspect: the next calls go to Redis, and a reservation is served.
    expect(await guardRedis(client, () => client.ping())).toBe('PONG');
    const next = await t.post('/api/v1/llm/budgets/reservations', reservationBody(org.member.id), { key: ingestKey });
    expect(next.status).toBe(200);
    expect(next.body.allowed).toBe(true);
  });

  it('a hung Redis still fails a call after the timeout, further calls fail at once, and all is served again once it answers', async () => {
    redis.pause();
    try {
      await expect(guardRedis(client, () => client.ping())).rejects.toMatchObject({ name: 'RedisUnavailableError', cause: { message: 'Command timed out' } });
      const refused = await guardRedis(client, () => client.ping()).catch((err: Error) => err);
      expect(refused).toMatchObject({ name: 'RedisUnavailableError', cause: undefined }); // refused without trying
      const pipeline = await guardRedis(client, () => client.pipeline().echo('x').exec()).catch((err: Error) => err);
      expect(pipeline).toMatchObject({ name: 'RedisUnavailableError' });
    } finally {
      redis.resume();
    }
    await waitFor(() => guardRedis(client, () => client.ping()).catch(() => undefined), 'Redis to be served again');
    expect(await guardRedis(client, () => client.pipeline().echo('y').exec())).toEqual([[null, 'y']]);
  });
});

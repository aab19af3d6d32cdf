import Redis from 'ioredis';
import { ReservationReconciler } from '../src/reservations/reservation-reconciler.service';
import { blockingBudget, counters, nowSeconds, RESERVATIONS, reservationBody, twoApiProcessesPerSuite } from './helpers/reservations';
import { seedOrg, TestApp } from './helpers/test-app';
import { ingest, record } from './helpers/usage';

const CLIENTS = 8;
const ATTEMPTS = 400;

/**
 * Redis loses every counter (FLUSHDB on a private redis-server, never the shared one) while two
 * API processes grant and settle reservations: nothing is granted beyond the limit, because the
 * counters are rebuilt from PostgreSQL before the next grant; afterwards they equal PostgreSQL.
 */
describe('reservations: Redis FLUSHDB under load', () => {
  let a: TestApp, b: TestApp, redisUrl: string, ingestKey: string;
  twoApiProcessesPerSuite((started) => ({ a, b, redisUrl, ingestKey } = started));

  it('grants nothing beyond the limit, and the counters equal PostgreSQL afterwards', async () => {
    const org = await seedOrg(a, 'Flushed');
    const keyId = org.member.id;
    const budget = (await a.put(`/api/v1/llm/budgets/apikey/${keyId}`, blockingBudget('tokens', 10_000))).body;
    const orgBudget = (await a.put(`/api/v1/llm/budgets/org/${org.org.id}`, blockingBudget('tokens', 1_000_000, { owner: 'cluster' }))).body;
    const flusher = new Redis(redisUrl);
    let attempts = 0;
    let grants = 0;
    let flushed = false;
    const problems: string[] = [];

    // The reconciler compares and repairs meanwhile, as a worker would (it must not drift the counters either).
    let loading = true;
    const reconciling = (async () => {
      let runs = 0;
      while (loading || runs === 0) {
        await a.app.get(ReservationReconciler).reconcileAll();
        runs++;
      }
      return runs;
    })();
    // Each client reserves 100 tokens at a time; half of the grants are settled right away with their reserved usage.
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_v, client) => {
        const app = client % 2 ? b : a;
        while (attempts < ATTEMPTS) {
          attempts++;
          const res = await app.post(RESERVATIONS, reservationBody(keyId, { input_tokens: 50, max_output_tokens: 50, min_output_tokens: 50 }), { key: ingestKey });
          if (res.status !== 200) {
            problems.push(`${res.status} ${res.text}`);
            continue;
          }
          if (!res.body.allowed) continue;
          grants++;
          if (grants === 40 && !flushed) {
            flushed = true;
            await flusher.flushdb();
          }
          if (grants % 2 === 0) {
            const settled = await ingest(app, ingestKey, [record(keyId, { input_tokens: 50, output_tokens: 50, created_at: nowSeconds(), reservation_id: res.body.id } as never)]);
            if (settled.status !== 200) problems.push(`ingest ${settled.status}`);
          }
        }
      }),
    );
    loading = false;
    expect(await reconciling).toBeGreaterThan(0);
    flusher.disconnect();
    expect(problems).toEqual([]);
    expect(flushed).toBe(true);
    expect(grants).toBe(100);

    // PostgreSQL: recorded spend + live holds = the limit, exactly.
    const [row] = await a.dataSource.query(
      `SELECT COALESCE(SUM(reserved_tokens) FILTER (WHERE status = 'held' AND expires_at > now()), 0)::text AS held,
              COUNT(*) FILTER (WHERE status <> 'denied')::int AS granted
       FROM reservations WHERE org_id = $1`,
      [org.org.id],
    );
    const recorded = (await a.get(`/api/v1/llm/budgets/${budget.id}`)).body.spend.tokens_spent;
    expect(row.granted).toBe(100);
    expect(BigInt(recorded) + BigInt(row.held)).toBe(10_000n);
    expect(await counters(a, org.org.id, budget.id)).toEqual({ committed: BigInt(recorded), held: BigInt(row.held) });
    expect(await counters(a, org.org.id, orgBudget.id)).toEqual({ committed: BigInt(recorded), held: BigInt(row.held) });
    expect((await a.app.get(ReservationReconciler).reconcileAll()).repaired).toBe(0);
  });
});

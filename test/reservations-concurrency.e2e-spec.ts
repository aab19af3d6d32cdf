import { blockingBudget, counters, nowSeconds, RESERVATIONS, reservationBody } from './helpers/reservations';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { ingest, record } from './helpers/usage';

const BURST = 200;

/**
 * SPEC §4.1's invariant across two API processes sharing one database and one Redis prefix: 200
 * concurrent reservations of 100 tokens (or their price) against a budget that blocks at 100 of
 * them. Exactly 100 are granted; settled with their reserved amounts, spend is exactly the cap;
 * committed + held never exceeds it at any sampled moment.
 */
describe('reservations: a strict cap under concurrency, over two API processes', () => {
  let a: TestApp;
  let b: TestApp;
  let ingestKey: string;
  beforeAll(async () => {
    a = await startTestApp();
    b = await startTestApp({ REDIS_PREFIX: a.config.redisPrefix }, { database: a.db });
    ingestKey = (await createSystemKey(a, 'ingest')).key;
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  /** Samples committed + held (Redis) and the recorded spend (PostgreSQL) until stopped; returns the largest of each. */
  function sampler(orgId: string, budgetId: string, spentOf: () => Promise<bigint>) {
    let running = true;
    const maxima = { counters: 0n, recorded: 0n, samples: 0 };
    const loop = (async () => {
      while (running) {
        const c = await counters(a, orgId, budgetId);
        if (c && c.committed + c.held > maxima.counters) maxima.counters = c.committed + c.held;
        const recorded = await spentOf();
        if (recorded > maxima.recorded) maxima.recorded = recorded;
        maxima.samples++;
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    return async () => {
      running = false;
      await loop;
      return maxima;
    };
  }

  async function burstAndSettle(options: { kind: 'tokens' | 'cost'; model: string; limit: number; cap: bigint; recordedOf: (budget: { spend: { tokens_spent: string; cost_spent_nano: string } }) => string }) {
    const org = await seedOrg(a, `Cap-${options.kind}`);
    const keyId = org.member.id;
    const budget = (await a.put(`/api/v1/llm/budgets/apikey/${keyId}`, blockingBudget(options.kind, options.limit))).body;
    const spentOf = async () => BigInt(options.recordedOf((await a.get(`/api/v1/llm/budgets/${budget.id}`)).body));
    const stop = sampler(org.org.id, budget.id, spentOf);
    let granted: Array<{ body: { id: string; granted_output_tokens: number; reserved: { tokens: string } } }>;
    try {
      const answers = await Promise.all(
        Array.from({ length: BURST }, (_v, i) =>
          (i % 2 ? b : a).post(RESERVATIONS, reservationBody(keyId, { model: options.model, input_tokens: 50, max_output_tokens: 50 }), { key: ingestKey }),
        ),
      );
      expect(answers.every((r) => r.status === 200)).toBe(true);
      granted = answers.filter((r) => r.body.allowed);
      expect(granted).toHaveLength(100);
      expect(granted.every((r) => r.body.granted_output_tokens === 50 && r.body.reserved.tokens === '100')).toBe(true);
      expect(new Set(answers.map((r) => r.body.denied_by[0]?.reason).filter(Boolean))).toEqual(new Set(['budget_exhausted']));
      // Each process decided its half against the same counters: the cap held across them, not
      // inside one. (Which process granted how many depends on timing: one may take all 100.)
      for (const parity of [0, 1]) expect(answers.filter((r, i) => i % 2 === parity && typeof r.body.allowed === 'boolean')).toHaveLength(BURST / 2);

      // Settle every grant with its reserved usage, from both processes at once, 10 records a batch.
      const records = granted.map((r) => record(keyId, { model: options.model, input_tokens: 50, output_tokens: 50, created_at: nowSeconds(), reservation_id: r.body.id } as never));
      const batches = Array.from({ length: 10 }, (_v, i) => records.slice(i * 10, i * 10 + 10));
      const results = await Promise.all(batches.map((batch, i) => ingest(i % 2 ? b : a, ingestKey, batch)));
      expect(results.map((r) => r.body.accepted)).toEqual(Array(10).fill(10));
    } finally {
      await stop();
    }
    const maxima = await stop();
    expect(maxima.samples).toBeGreaterThan(0);
    expect(maxima.counters).toBeLessThanOrEqual(options.cap);
    expect(maxima.recorded).toBeLessThanOrEqual(options.cap);
    expect(await spentOf()).toBe(options.cap);
    expect(await counters(a, org.org.id, budget.id)).toEqual({ committed: options.cap, held: 0n });
    const statuses = await Promise.all(granted.map((r, i) => (i % 2 ? a : b).get(`${RESERVATIONS}/${r.body.id}`, { key: ingestKey })));
    expect(new Set(statuses.map((s) => s.body.status))).toEqual(new Set(['settled']));
    // Nothing more fits.
    const after = await b.post(RESERVATIONS, reservationBody(keyId, { model: options.model, input_tokens: 0, max_output_tokens: 1 }), { key: ingestKey });
    expect(after.body.denied_by[0].reason).toBe('budget_exhausted');
  }

  it('tokens: exactly 100 of 200 granted, spend exactly 10,000 after settling, never above', async () => {
    await burstAndSettle({ kind: 'tokens', model: 'gpt-4o-mini', limit: 10_000, cap: 10_000n, recordedOf: (x) => x.spend.tokens_spent });
  });

  it('cost: the same with the price book, exact in nano-units', async () => {
    // 50 input tokens at 2.50 and 50 output tokens at 10.00 per million: 125,000 + 500,000 → 625,000 nano-units each.
    const price = await a.put('/api/v1/llm/prices/cap-model', { input_per_mtok: '2.50', cached_input_per_mtok: '1.25', output_per_mtok: '10.00', effective_from: nowSeconds() - 60 });
    expect(price.status).toBe(200);
    await burstAndSettle({ kind: 'cost', model: 'cap-model', limit: 0.0625, cap: 62_500_000n, recordedOf: (x) => x.spend.cost_spent_nano });
  });
});

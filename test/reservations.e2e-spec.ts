import Redis from 'ioredis';
import { REDIS } from '../src/redis/redis.module';
import { ReservationCounters } from '../src/reservations/reservation-counters';
import { ReservationReconciler } from '../src/reservations/reservation-reconciler.service';
import { ReservationsRepository } from '../src/reservations/reservations.repository';
import { blockingBudget, counters, nowSeconds, RESERVATIONS, reservationBody, reserve } from './helpers/reservations';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { ingestOk, record } from './helpers/usage';
import { waitFor } from './helpers/wait-for';

describe('reservations (SPEC §4.1)', () => {
  let t: TestApp;
  let ingestKey: string;
  beforeAll(async () => {
    t = await startTestApp({ PROCESS_ROLE: 'all', RESERVATION_RECONCILE_INTERVAL_MS: '3600000' });
    ingestKey = (await createSystemKey(t, 'ingest')).key;
  });
  afterAll(async () => {
    if (process.env.DUMP_LOGS) console.log(t.logs.filter((l) => /"level":"(error|warn)"/.test(l)).join(''));
    await t.close();
  });

  /** A fresh org with a member key, a daily tokens budget on the key, and optionally spend already recorded. */
  async function keyWithBudget(limit: number, spent = 0) {
    const org = await seedOrg(t, `Res-${Math.random().toString(36).slice(2, 8)}`);
    const budget = (await t.put(`/api/v1/llm/budgets/apikey/${org.member.id}`, blockingBudget('tokens', limit))).body;
    if (spent > 0) await ingestOk(t, ingestKey, [record(org.member.id, { input_tokens: spent, output_tokens: 0, created_at: nowSeconds() })]);
    return { org, keyId: org.member.id, budget };
  }

  it('grants what still fits (partial grant), and denies below min_output_tokens holding nothing', async () => {
    const { keyId, budget } = await keyWithBudget(10_000, 9_000);
    const tooFew = await reserve(t, ingestKey, reservationBody(keyId, { input_tokens: 400, max_output_tokens: 4096, min_output_tokens: 700 }));
    expect(tooFew.body).toMatchObject({
      object: 'llm.budget.reservation',
      status: 'denied',
      allowed: false,
      granted_output_tokens: 0,
      reserved: { tokens: '0', cost_nano: '0' },
      expires_at: null,
      denied_by: [{ budget_id: budget.id, scope: 'apikey', owner: 'org', reason: 'insufficient_budget' }],
      budgets: [{ budget_id: budget.id, limit_kind: 'tokens', block_limit: '10000', committed: '9000', held: '0', remaining: '1000' }],
    });
    const partial = await reserve(t, ingestKey, reservationBody(keyId, { input_tokens: 400, max_output_tokens: 4096 }));
    expect(partial.body).toMatchObject({
      status: 'held',
      allowed: true,
      granted_output_tokens: 600,
      reserved: { tokens: '1000' },
      retry_after: null,
      denied_by: [],
      budgets: [{ budget_id: budget.id, block_limit: '10000', committed: '9000', held: '1000', remaining: '0' }],
    });
    expect(partial.body.id).toMatch(/^res_/);
    expect(partial.body.expires_at).toBeGreaterThan(nowSeconds() + 590);
    const stored = await t.get(`${RESERVATIONS}/${partial.body.id}`, { key: ingestKey });
    expect(stored.body).toEqual(partial.body);
  });

  it('is all or nothing: a denial by the org budget leaves no hold on the key budget', async () => {
    const { org, keyId, budget: keyBudget } = await keyWithBudget(10_000);
    const orgBudget = (await t.put(`/api/v1/llm/budgets/org/${org.org.id}`, blockingBudget('tokens', 500, { owner: 'cluster' }))).body;
    const denied = await reserve(t, ingestKey, reservationBody(keyId, { input_tokens: 400, max_output_tokens: 1000, min_output_tokens: 200 }));
    expect(denied.body.status).toBe('denied');
    expect(denied.body.denied_by).toEqual([{ budget_id: orgBudget.id, scope: 'org', owner: 'cluster', reason: 'insufficient_budget', resets_at: expect.any(Number) }]);
    expect(await counters(t, org.org.id, keyBudget.id)).toEqual({ committed: 0n, held: 0n });
    expect(await counters(t, org.org.id, orgBudget.id)).toEqual({ committed: 0n, held: 0n });
    // Only the 100 output tokens the org budget affords; the key budget holds exactly this reservation.
    const granted = await reserve(t, ingestKey, reservationBody(keyId, { input_tokens: 400, max_output_tokens: 1000 }));
    expect(granted.body.granted_output_tokens).toBe(100);
    expect(await counters(t, org.org.id, keyBudget.id)).toEqual({ committed: 0n, held: 500n });
    expect(await counters(t, org.org.id, orgBudget.id)).toEqual({ committed: 0n, held: 500n });
  });

  it('returns the same reservation for the same request_id, and settles once however often the record is sent', async () => {
    const { org, keyId, budget } = await keyWithBudget(10_000);
    const body = reservationBody(keyId, { input_tokens: 300, max_output_tokens: 700 });
    const first = await reserve(t, ingestKey, body);
    const again = await reserve(t, ingestKey, body);
    expect(again.body.id).toBe(first.body.id);
    expect(again.body).toEqual(first.body);
    expect(await counters(t, org.org.id, budget.id)).toEqual({ committed: 0n, held: 1000n });

    const used = record(keyId, { input_tokens: 300, output_tokens: 250, created_at: nowSeconds(), reservation_id: first.body.id } as never);
    expect(await ingestOk(t, ingestKey, [used])).toEqual({ object: 'usage.records.ingest', accepted: 1, duplicates: 0 });
    expect(await ingestOk(t, ingestKey, [used])).toMatchObject({ accepted: 0, duplicates: 1 });
    expect(await ingestOk(t, ingestKey, [used, used])).toMatchObject({ accepted: 0, duplicates: 2 });
    expect(await counters(t, org.org.id, budget.id)).toEqual({ committed: 550n, held: 0n });
    expect((await t.get(`${RESERVATIONS}/${first.body.id}`, { key: ingestKey })).body.status).toBe('settled');
    expect((await t.get(`/api/v1/llm/budgets/${budget.id}`)).body.spend.tokens_spent).toBe('550');
    // Release after settle changes nothing.
    const release = await t.post(`${RESERVATIONS}/${first.body.id}/release`, undefined, { key: ingestKey });
    expect(release.status).toBe(200);
    expect(release.body.status).toBe('settled');
    expect(await counters(t, org.org.id, budget.id)).toEqual({ committed: 550n, held: 0n });
  });

  it('releases a hold, once', async () => {
    const { org, keyId, budget } = await keyWithBudget(10_000);
    const held = await reserve(t, ingestKey, reservationBody(keyId, { input_tokens: 1000, max_output_tokens: 1000 }));
    expect(await counters(t, org.org.id, budget.id)).toEqual({ committed: 0n, held: 2000n });
    const released = await t.post(`${RESERVATIONS}/${held.body.id}/release`, undefined, { key: ingestKey });
    expect(released.body).toMatchObject({ id: held.body.id, status: 'released', allowed: true });
    expect(await counters(t, org.org.id, budget.id)).toEqual({ committed: 0n, held: 0n });
    expect((await t.post(`${RESERVATIONS}/${held.body.id}/release`, undefined, { key: ingestKey })).body.status).toBe('released');
    expect(await counters(t, org.org.id, budget.id)).toEqual({ committed: 0n, held: 0n });
  });

  it('frees a 2 s hold by itself at expires_at; a later record for it still counts once', async () => {
    const { org, keyId, budget } = await keyWithBudget(10_000);
    const short = await reserve(t, ingestKey, reservationBody(keyId, { input_tokens: 0, max_output_tokens: 6000, ttl_seconds: 2 }));
    expect(short.body).toMatchObject({ status: 'held', granted_output_tokens: 6000 });
    const blocked = await reserve(t, ingestKey, reservationBody(keyId, { input_tokens: 0, max_output_tokens: 6000, min_output_tokens: 6000 }));
    expect(blocked.body.denied_by[0].reason).toBe('insufficient_budget');
    // No sweeper runs here (the reconciler's interval is an hour): the admission itself drops it.
    const after = await waitFor(async () => {
      const res = await reserve(t, ingestKey, reservationBody(keyId, { input_tokens: 0, max_output_tokens: 6000, min_output_tokens: 6000 }));
      return res.body.allowed ? res : null;
    }, 'the expired hold to stop counting');
    expect((await t.get(`${RESERVATIONS}/${short.body.id}`, { key: ingestKey })).body.status).toBe('expired');
    expect(await counters(t, org.org.id, budget.id)).toEqual({ committed: 0n, held: 6000n });
    await t.post(`${RESERVATIONS}/${after.body.id}/release`, undefined, { key: ingestKey });

    const late = record(keyId, { input_tokens: 0, output_tokens: 5000, created_at: nowSeconds(), reservation_id: short.body.id } as never);
    await ingestOk(t, ingestKey, [late]);
    await ingestOk(t, ingestKey, [late]);
    expect(await counters(t, org.org.id, budget.id)).toEqual({ committed: 5000n, held: 0n });
    expect((await t.get(`/api/v1/llm/budgets/${budget.id}`)).body.spend.tokens_spent).toBe('5000');
    const over = await reserve(t, ingestKey, reservationBody(keyId, { input_tokens: 0, max_output_tokens: 5001, min_output_tokens: 5001 }));
    expect(over.body.denied_by[0].reason).toBe('insufficient_budget');
    expect((await reserve(t, ingestKey, reservationBody(keyId, { input_tokens: 0, max_output_tokens: 5000, min_output_tokens: 5000 }))).body.allowed).toBe(true);
  });

  it('answers a budget_exhausted denial with retry_after = seconds to the window reset, and the check agrees once spend is committed', async () => {
    const { keyId, budget } = await keyWithBudget(1000);
    const all = await reserve(t, ingestKey, reservationBody(keyId, { input_tokens: 500, max_output_tokens: 500 }));
    expect(all.body.granted_output_tokens).toBe(500);
    const denied = await reserve(t, ingestKey, reservationBody(keyId));
    const resetsAt = (await t.get(`/api/v1/llm/budgets/${budget.id}`)).body.spend.resets_at;
    expect(denied.body.denied_by).toEqual([{ budget_id: budget.id, scope: 'apikey', owner: 'org', reason: 'budget_exhausted', resets_at: resetsAt }]);
    expect(Math.abs(denied.body.retry_after - (resetsAt - nowSeconds()))).toBeLessThanOrEqual(2);
    // Settled with the reserved amount: committed = block limit, and the check reports it blocked.
    await ingestOk(t, ingestKey, [record(keyId, { input_tokens: 500, output_tokens: 500, created_at: nowSeconds(), reservation_id: all.body.id } as never)]);
    const check = await t.post('/api/v1/llm/budgets/check', { api_key_id: keyId }, { key: ingestKey });
    expect(check.body.allowed).toBe(false);
    expect(check.body.blocked_by.map((b: { budget_id: string }) => b.budget_id)).toEqual([budget.id]);
    expect((await reserve(t, ingestKey, reservationBody(keyId))).body.denied_by[0].reason).toBe('budget_exhausted');
  });

  it('denies unpriced_model under a cost budget, and prices the hold with the price book', async () => {
    const org = await seedOrg(t, 'Priced');
    const budget = (await t.put(`/api/v1/llm/budgets/org/${org.org.id}`, blockingBudget('cost', 1))).body;
    const unpriced = await reserve(t, ingestKey, reservationBody(org.member.id, { model: 'no-price-model' }));
    expect(unpriced.body).toMatchObject({ status: 'denied', retry_after: null, denied_by: [{ budget_id: budget.id, reason: 'unpriced_model' }] });
    await t.put('/api/v1/llm/prices/priced-model', { input_per_mtok: '2.50', cached_input_per_mtok: '1.25', output_per_mtok: '10.00', effective_from: nowSeconds() - 60 });
    // 1.00 = 1e9 nano: 1000 input tokens cost 2,500,000; each output token 10,000 → 99,750 output tokens fit.
    const priced = await reserve(t, ingestKey, reservationBody(org.member.id, { model: 'priced-model', input_tokens: 1000, max_output_tokens: 1_000_000 }));
    expect(priced.body).toMatchObject({ status: 'held', granted_output_tokens: 99_750, reserved: { tokens: '100750', cost_nano: '1000000000' } });
    expect(priced.body.budgets[0]).toMatchObject({ limit_kind: 'cost', block_limit: '1000000000', held: '1000000000', remaining: '0' });
  });

  it('validates the request and 404s unknown keys and reservations', async () => {
    const org = await seedOrg(t, 'Valid');
    const bad = await t.post(RESERVATIONS, { request_id: '', api_key_id: org.member.id, model: 'm', input_tokens: -1, max_output_tokens: 0, min_output_tokens: 5, ttl_seconds: 3601 }, { key: ingestKey });
    expect(bad.status).toBe(400);
    expect(bad.body.error.details.map((d: { param: string }) => d.param).sort()).toEqual(['input_tokens', 'max_output_tokens', 'min_output_tokens', 'request_id', 'ttl_seconds']);
    const minAboveMax = await t.post(RESERVATIONS, reservationBody(org.member.id, { max_output_tokens: 10, min_output_tokens: 11 }), { key: ingestKey });
    expect(minAboveMax.status).toBe(400);
    expect(minAboveMax.body.error.param).toBe('min_output_tokens');
    expect((await t.post(RESERVATIONS, reservationBody('key_nope'), { key: ingestKey })).status).toBe(404);
    expect((await t.get(`${RESERVATIONS}/res_nope`, { key: ingestKey })).status).toBe(404);
    expect((await t.post(RESERVATIONS, reservationBody(org.member.id), { key: org.orgAdmin.key })).status).toBe(403);
    const noBudget = await reserve(t, ingestKey, reservationBody(org.member.id, { max_output_tokens: 4096 }));
    expect(noBudget.body).toMatchObject({ status: 'held', granted_output_tokens: 4096, budgets: [], denied_by: [] });
  });

  it('repairs counters that drifted from PostgreSQL, and counts the repair in a metric', async () => {
    const { org, keyId, budget } = await keyWithBudget(10_000, 1000);
    const held = await reserve(t, ingestKey, reservationBody(keyId, { input_tokens: 100, max_output_tokens: 100 }));
    expect(held.body.budgets[0]).toMatchObject({ committed: '1000', held: '200' });
    const redis = t.app.get<Redis>(REDIS);
    const [state, , amounts] = t.app.get(ReservationCounters).windowKeys({ orgId: org.org.id, budgetId: budget.id, epoch: '0', start: held.body.budgets[0].resets_at - 86400, end: held.body.budgets[0].resets_at });
    await redis.hincrby(state, 'committed', 777); // a settle that counted twice
    await redis.hdel(amounts, held.body.id); // a hold lost
    await redis.hset(state, 'held', '0');
    expect(await counters(t, org.org.id, budget.id)).toEqual({ committed: 1777n, held: 0n });
    const result = await t.app.get(ReservationReconciler).reconcileAll();
    expect(result.repaired).toBeGreaterThanOrEqual(1);
    expect(await counters(t, org.org.id, budget.id)).toEqual({ committed: 1000n, held: 200n });
    const metrics = (await t.get('/metrics', { key: null })).text;
    expect(metrics).toMatch(/tally_reservation_drift_repairs_total\{kind="committed"\} [1-9]/);
    expect(metrics).toMatch(/tally_reservation_drift_repairs_total\{kind="held"\} [1-9]/);
    expect(metrics).toMatch(/tally_reservation_decisions_total\{outcome="granted"\} [1-9]/);
    expect((await t.app.get(ReservationReconciler).reconcileAll()).repaired).toBe(0);
  });

  it('goes on with the other budgets and orgs when one window cannot be compared, and counts the failure', async () => {
    const one = await keyWithBudget(10_000, 1000);
    const two = await keyWithBudget(10_000, 1000);
    // Orgs are compared in id order: the damaged one first.
    const [damaged, drifted] = one.org.org.id < two.org.org.id ? [one, two] : [two, one];
    const keysOf = async ({ org, keyId, budget }: typeof one) => {
      const held = await reserve(t, ingestKey, reservationBody(keyId, { input_tokens: 100, max_output_tokens: 100 }));
      const resetsAt = held.body.budgets[0].resets_at;
      return t.app.get(ReservationCounters).windowKeys({ orgId: org.org.id, budgetId: budget.id, epoch: '0', start: resetsAt - 86400, end: resetsAt });
    };
    // The drifted org also has a budget whose stored time zone this runtime does not know (a row
    // written by another version, or a zone ICU dropped): its window cannot be computed.
    const unknownZone = (await t.put(`/api/v1/llm/budgets/org/${drifted.org.org.id}`, blockingBudget('tokens', 50_000))).body;
    const redis = t.app.get<Redis>(REDIS);
    const [, , damagedAmounts] = await keysOf(damaged);
    const [driftedState] = await keysOf(drifted);
    // A key of the wrong type: every script on that window fails (WRONGTYPE).
    await redis.del(damagedAmounts);
    await redis.set(damagedAmounts, 'not a hash');
    await t.dataSource.query(`UPDATE budgets SET timezone = 'Mars/Olympus_Mons' WHERE id = $1`, [unknownZone.id]);
    await redis.hincrby(driftedState, 'committed', 500);
    try {
      const result = await t.app.get(ReservationReconciler).reconcileAll();
      expect(result.failed).toBeGreaterThanOrEqual(2);
      expect(result.repaired).toBeGreaterThanOrEqual(1);
      expect(await counters(t, drifted.org.org.id, drifted.budget.id)).toEqual({ committed: 1000n, held: 200n });
      expect(Number(/^tally_reservation_reconcile_failures_total (\S+)$/m.exec((await t.get('/metrics', { key: null })).text)?.[1])).toBeGreaterThanOrEqual(2);
    } finally {
      await redis.del(damagedAmounts);
      await t.dataSource.query(`UPDATE budgets SET timezone = 'UTC' WHERE id = $1`, [unknownZone.id]);
    }
  });

  it('moves the fence only of a window that differs: a pass over counters equal to PostgreSQL makes no admission decide again', async () => {
    const { org, keyId, budget } = await keyWithBudget(10_000, 1000);
    const orgBudget = (await t.put(`/api/v1/llm/budgets/org/${org.org.id}`, blockingBudget('tokens', 50_000))).body;
    const held = await reserve(t, ingestKey, reservationBody(keyId, { input_tokens: 100, max_output_tokens: 100 }));
    expect(held.body.budgets).toHaveLength(2);
    const fences = async () =>
      Object.fromEntries(
        (await t.dataSource.query(`SELECT fence, value::text FROM reservation_fences WHERE org_id = $1 AND fence = ANY($2)`, [org.org.id, [budget.id, orgBudget.id]])).map(
          (r: { fence: string; value: string }) => [r.fence, r.value],
        ),
      );
    const reconciler = t.app.get(ReservationReconciler);
    const loaded = await fences();
    // Both windows equal PostgreSQL (committed 1000 on both, one hold of 200): compared, nothing moves.
    expect(await reconciler.reconcileAll()).toMatchObject({ repaired: 0 });
    expect(await fences()).toEqual(loaded);
    // The key budget's hold lost in Redis: only its fence moves, and its counters are repaired.
    const keyEntry = held.body.budgets.find((x: { budget_id: string }) => x.budget_id === budget.id);
    const [state, , amounts] = t.app.get(ReservationCounters).windowKeys({ orgId: org.org.id, budgetId: budget.id, epoch: '0', start: keyEntry.resets_at - 86400, end: keyEntry.resets_at });
    await t.app.get<Redis>(REDIS).hdel(amounts, held.body.id);
    await t.app.get<Redis>(REDIS).hset(state, 'held', '0');
    expect((await reconciler.reconcileAll()).repaired).toBeGreaterThanOrEqual(1);
    const after = await fences();
    expect(BigInt(after[budget.id])).toBe(BigInt(loaded[budget.id]) + 1n);
    expect(after[orgBudget.id]).toBe(loaded[orgBudget.id]);
    expect(await counters(t, org.org.id, budget.id)).toEqual({ committed: 1000n, held: 200n });
    expect(await counters(t, org.org.id, orgBudget.id)).toEqual({ committed: 1000n, held: 200n });
    // The next admission decides once from the repaired counters (its fences hold).
    const next = await reserve(t, ingestKey, reservationBody(keyId, { input_tokens: 100, max_output_tokens: 100 }));
    expect(next.body.status).toBe('held');
    expect(await counters(t, org.org.id, budget.id)).toEqual({ committed: 1000n, held: 400n });
  });

  it('compares before fencing with the spend settled since the pass began, and keeps the pass for a fenced repair when they differ', async () => {
    const { org, keyId, budget } = await keyWithBudget(10_000, 1000);
    const held = await reserve(t, ingestKey, reservationBody(keyId, { input_tokens: 100, max_output_tokens: 100 }));
    const resetsAt = held.body.budgets[0].resets_at;
    const window = { orgId: org.org.id, budgetId: budget.id, epoch: '0', start: resetsAt - 86400, end: resetsAt };
    const c = t.app.get(ReservationCounters);
    const holds = (await t.app.get(ReservationsRepository).liveHolds(t.dataSource.manager, org.org.id, [{ budgetId: budget.id, epoch: '0', start: window.start }])).map(
      (h) => ({ reservationId: h.reservationId, amount: h.amount, expiresAtMs: h.expiresAtMs }),
    );
    expect(holds.map((h) => h.amount)).toEqual([200n]);
    const token = await c.beginReconcile(window);
    expect(token).not.toBeNull();
    // Settled after the pass began (so after its read of PostgreSQL, which showed 1000): noted aside.
    const late = record(keyId, { input_tokens: 300, output_tokens: 0, created_at: nowSeconds() });
    await ingestOk(t, ingestKey, [late]);
    await waitFor(async () => (await counters(t, org.org.id, budget.id))?.committed === 1300n, 'the late record to settle');
    // A read that showed the late record, without it among the records seen: it would count it twice.
    expect(await c.checkReconcile(window, 1300n, holds, [], token!)).toBe('differs');
    // A hold PostgreSQL does not show (in flight, or lost) differs too; the pass stays begun meanwhile.
    expect(await c.checkReconcile(window, 1000n, [], [], token!)).toBe('differs');
    // The read before the late record plus what settled since: the counters equal it; the pass ends, nothing changed.
    expect(await c.checkReconcile(window, 1000n, holds, [], token!)).toBe('equal');
    expect(await counters(t, org.org.id, budget.id)).toEqual({ committed: 1300n, held: 200n });
    expect(await c.checkReconcile(window, 1000n, holds, [], token!)).toBeUndefined();
    // A read that showed a record settled since, and says so among the records seen: counted once.
    const next = await c.beginReconcile(window);
    const later = record(keyId, { input_tokens: 50, output_tokens: 0, created_at: nowSeconds() });
    await ingestOk(t, ingestKey, [later]);
    await waitFor(async () => (await counters(t, org.org.id, budget.id))?.committed === 1350n, 'the later record to settle');
    expect(await c.checkReconcile(window, 1350n, holds, [later.id], next!)).toBe('equal');
  });
});

import { budgetWindow } from '../src/budgets/budget-window';
import { orgLockKey, RESERVATION_LOCK_CLASS } from '../src/reservations/admission-sql';
import { ReservationReconciler } from '../src/reservations/reservation-reconciler.service';
import { blockingBudget, nowSeconds, RESERVATIONS, reservationBody, reserve } from './helpers/reservations';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { ingestOk, record } from './helpers/usage';
import { waitFor } from './helpers/wait-for';

/**
 * A budget changed under live reservations (SPEC §4.1's invariant holds across a PUT): a new
 * window (time zone, period), a new unit (limit kind) or a block threshold switched off and on
 * again. The counters kept before the change must not be read after it, and the live holds must
 * count in the new ones.
 */
describe('reservations: a budget redefined under live holds', () => {
  let t: TestApp;
  let ingestKey: string;
  beforeAll(async () => {
    // No reconciler pass during the tests: what they check must hold without one.
    t = await startTestApp({ RESERVATION_RECONCILE_INTERVAL_MS: '3600000' });
    ingestKey = (await createSystemKey(t, 'ingest')).key;
  });
  afterAll(async () => {
    if (process.env.DUMP_LOGS) console.log(t.logs.filter((l) => /"level":"(error|warn)"/.test(l)).join(''));
    await t.close();
  });

  const grant = async (keyId: string, extra: Record<string, unknown> = {}) =>
    (await reserve(t, ingestKey, reservationBody(keyId, { input_tokens: 0, max_output_tokens: 1000, ...extra }))).body;

  /** Every loaded counter equals PostgreSQL: a reconciler pass finds nothing to repair. */
  const expectNoDrift = async () => expect((await t.app.get(ReservationReconciler).reconcileAll()).repaired).toBe(0);

  it.each([
    ['time zone', { timezone: 'Asia/Tokyo' }],
    ['period', { period: 'monthly' }],
  ])('a new %s: the live holds count in the new window', async (_what, change) => {
    const org = await seedOrg(t, `Redefined-${Math.random().toString(36).slice(2, 8)}`);
    const path = `/api/v1/llm/budgets/apikey/${org.member.id}`;
    const budget = (await t.put(path, blockingBudget('tokens', 1000))).body;
    const held = await grant(org.member.id, { max_output_tokens: 900 });
    expect(held).toMatchObject({ status: 'held', granted_output_tokens: 900 });

    const changed = await t.put(path, blockingBudget('tokens', 1000, change));
    expect(changed.status).toBe(200);
    expect(changed.body.id).toBe(budget.id);
    // 900 are held: 100 fit in the new window, not 1,000.
    const partial = await grant(org.member.id);
    expect(partial).toMatchObject({ status: 'held', granted_output_tokens: 100 });
    expect(partial.budgets[0]).toMatchObject({ budget_id: budget.id, committed: '0', held: '1000', remaining: '0' });

    // The first hold settles with what it used: its hold leaves the new counters, its record counts there.
    await ingestOk(t, ingestKey, [record(org.member.id, { input_tokens: 0, output_tokens: 900, created_at: nowSeconds(), reservation_id: held.id } as never)]);
    expect((await grant(org.member.id, { min_output_tokens: 1 })).denied_by).toEqual([expect.objectContaining({ budget_id: budget.id, reason: 'budget_exhausted' })]);
    await t.post(`${RESERVATIONS}/${partial.id}/release`, undefined, { key: ingestKey });
    expect(await grant(org.member.id)).toMatchObject({ status: 'held', granted_output_tokens: 100 });
    await expectNoDrift();
  });

  it('waits for the admissions being stored: a row stored under the org lock while the PUT waits is moved too', async () => {
    const org = await seedOrg(t, 'InFlight');
    const path = `/api/v1/llm/budgets/apikey/${org.member.id}`;
    const budget = (await t.put(path, blockingBudget('tokens', 1000))).body;
    // An admission batch in flight: the org's reservation lock, shared, held by this session.
    const batch = t.dataSource.createQueryRunner();
    await batch.connect();
    await batch.startTransaction();
    try {
      await batch.query(`SELECT pg_advisory_xact_lock_shared(${RESERVATION_LOCK_CLASS}, ${orgLockKey(org.org.id)})`);
      let answered = false;
      const put = t.put(path, blockingBudget('tokens', 1000, { timezone: 'Asia/Tokyo' })).then((res) => ((answered = true), res));
      await waitFor(async () => (await batch.query(`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`))[0].n > 0 || null, 'the PUT to wait for the batch');
      // The batch's row, decided from the budget as it was: held in today's UTC window, epoch 0.
      const utc = budgetWindow('daily', new Date()).start.getTime() / 1000;
      await batch.query(
        `INSERT INTO reservations (org_id, id, api_key_id, request_id, user_id, model, input_tokens, max_output_tokens, min_output_tokens,
           granted_output_tokens, status, reserved_tokens, reserved_cost_nano, holds, decision, expires_at, created_at)
         VALUES ($1, 'res_inFlightRow000000000001', $2, 'gw-in-flight', NULL, 'gpt-4o-mini', 0, 500, 1, 500, 'held', 500, 0, $3, '{}', now() + interval '10 minutes', now())`,
        [org.org.id, org.member.id, JSON.stringify([{ budget_id: budget.id, window_start: utc, amount: '500', epoch: '0' }])],
      );
      expect(answered).toBe(false);
      await batch.commitTransaction();
      expect((await put).status).toBe(200);
    } finally {
      if (batch.isTransactionActive) await batch.rollbackTransaction();
      await batch.release();
    }
    const tokyo = budgetWindow('daily', new Date(), 'Asia/Tokyo').start.getTime() / 1000;
    const [row] = await t.dataSource.query(`SELECT holds FROM reservations WHERE org_id = $1 AND id = 'res_inFlightRow000000000001'`, [org.org.id]);
    expect(row.holds).toEqual([{ budget_id: budget.id, window_start: tokyo, amount: '500', epoch: '1' }]);
    // It counts in the new counters: 500 of 1,000 are left.
    expect(await grant(org.member.id)).toMatchObject({ status: 'held', granted_output_tokens: 500 });
    await expectNoDrift();
  });

  it('a block threshold switched off and on again: spend recorded meanwhile counts', async () => {
    const org = await seedOrg(t, 'Reblocked');
    const path = `/api/v1/llm/budgets/apikey/${org.member.id}`;
    const budget = (await t.put(path, blockingBudget('tokens', 1000))).body;
    // Loads the counters of today's window.
    const first = await grant(org.member.id, { max_output_tokens: 10 });
    await t.post(`${RESERVATIONS}/${first.id}/release`, undefined, { key: ingestKey });

    expect((await t.put(path, { ...blockingBudget('tokens', 1000), thresholds: [{ pct: 100, action: 'alert' }] })).status).toBe(200);
    // Nothing blocks: the ingest keeps no counters of this budget.
    await ingestOk(t, ingestKey, [record(org.member.id, { input_tokens: 900, output_tokens: 0, created_at: nowSeconds() })]);
    expect((await t.put(path, blockingBudget('tokens', 1000))).status).toBe(200);

    const after = await grant(org.member.id);
    expect(after).toMatchObject({ status: 'held', granted_output_tokens: 100 });
    expect(after.budgets[0]).toMatchObject({ budget_id: budget.id, committed: '900', held: '100', remaining: '0' });
    await expectNoDrift();
  });

  it('a new limit kind: committed spend and live holds are counted again in the new unit', async () => {
    const model = `kind-model-${Math.random().toString(36).slice(2, 8)}`;
    // 1,000 nano-units a token, in and out.
    const price = await t.put(`/api/v1/llm/prices/${model}`, { input_per_mtok: '1.00', cached_input_per_mtok: '1.00', output_per_mtok: '1.00', effective_from: nowSeconds() - 60 });
    expect(price.status).toBe(200);
    const org = await seedOrg(t, 'Rekinded');
    const path = `/api/v1/llm/budgets/apikey/${org.member.id}`;
    const budget = (await t.put(path, blockingBudget('tokens', 1000))).body;
    const held = await grant(org.member.id, { model, input_tokens: 50, max_output_tokens: 50 });
    expect(held).toMatchObject({ status: 'held', reserved: { tokens: '100', cost_nano: '100000' } });
    await ingestOk(t, ingestKey, [record(org.member.id, { model, input_tokens: 900, output_tokens: 0, created_at: nowSeconds() })]);

    // 1,000,000 nano-units: 900,000 spent, 100,000 held.
    expect((await t.put(path, blockingBudget('cost', 0.001))).status).toBe(200);
    const denied = await grant(org.member.id, { model, max_output_tokens: 1 });
    expect(denied.denied_by).toEqual([expect.objectContaining({ budget_id: budget.id })]);
    expect(denied.budgets[0]).toMatchObject({ limit_kind: 'cost', block_limit: '1000000', committed: '900000', held: '100000', remaining: '0' });
    await t.post(`${RESERVATIONS}/${held.id}/release`, undefined, { key: ingestKey });
    expect(await grant(org.member.id, { model })).toMatchObject({ status: 'held', granted_output_tokens: 100, reserved: { cost_nano: '100000' } });
    await expectNoDrift();
  });
});

import { budgetWindow } from '../src/budgets/budget-window';
import { ReservationCounters } from '../src/reservations/reservation-counters';
import { blockingBudget, reservationBody, reserve } from './helpers/reservations';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { ingestOk, record } from './helpers/usage';

/** Zones whose local midnight falls at every quarter hour of UTC between them. */
const ZONES = [
  ...Array.from({ length: 27 }, (_, i) => i - 12).map((k) => (k === 0 ? 'UTC' : `Etc/GMT${k > 0 ? '-' : '+'}${Math.abs(k)}`)),
  'Asia/Kolkata',
  'Asia/Kathmandu',
  'Asia/Tehran',
  'America/St_Johns',
  'Pacific/Chatham',
];

/**
 * A hold that outlives its budget's window (SPEC §4.1): its record may be stamped after the reset
 * and count in the next window, so the hold counts there too. Windows are made to end soon by
 * picking a time zone whose local midnight is 1 to 59.5 minutes away.
 */
describe('reservations across a window reset', () => {
  let t: TestApp;
  let ingestKey: string;
  beforeAll(async () => {
    t = await startTestApp({ RESERVATION_RECONCILE_INTERVAL_MS: '3600000' });
    ingestKey = (await createSystemKey(t, 'ingest')).key;
  });
  afterAll(() => t.close());

  /** A time zone whose local midnight is 1 to 59.5 minutes away, its current and next daily windows. */
  const resetSoon = () => {
    const now = new Date();
    const zone = ZONES.find((z) => {
      const left = budgetWindow('daily', now, z).end.getTime() - now.getTime();
      return left > 60_000 && left < 59.5 * 60_000;
    })!;
    expect(zone).toBeDefined();
    const current = budgetWindow('daily', now, zone);
    return { zone, current, next: budgetWindow('daily', current.end, zone) };
  };
  const countersOf = (orgId: string, budgetId: string, epoch = '0') => (w: { start: Date; end: Date }) =>
    t.app.get(ReservationCounters).read({ orgId, budgetId, epoch, start: w.start.getTime() / 1000, end: w.end.getTime() / 1000 });

  it('holds in the next window too when the hold outlives the current one; a record after the reset counts there, once', async () => {
    const { zone, current, next } = resetSoon();
    const org = await seedOrg(t, 'ResetSoon');
    const budget = (await t.put(`/api/v1/llm/budgets/apikey/${org.member.id}`, blockingBudget('tokens', 1000, { timezone: zone }))).body;
    const counters = countersOf(org.org.id, budget.id);

    const held = (await reserve(t, ingestKey, reservationBody(org.member.id, { input_tokens: 0, max_output_tokens: 900, ttl_seconds: 3600 }))).body;
    expect(held).toMatchObject({ status: 'held', granted_output_tokens: 900 });
    // The answer shows the current window; the hold is in both.
    expect(held.budgets).toEqual([expect.objectContaining({ budget_id: budget.id, held: '900', resets_at: current.end.getTime() / 1000 })]);
    expect(await counters(current)).toEqual({ committed: 0n, held: 900n });
    expect(await counters(next)).toEqual({ committed: 0n, held: 900n });

    // The call ends after the reset: its record is stamped in the next window and settles both holds.
    const stamped = next.start.getTime() / 1000 + 5;
    await ingestOk(t, ingestKey, [record(org.member.id, { input_tokens: 0, output_tokens: 900, created_at: stamped, reservation_id: held.id } as never)]);
    expect(await counters(current)).toEqual({ committed: 0n, held: 0n });
    expect(await counters(next)).toEqual({ committed: 900n, held: 0n });

    // A hold that would outlive this window fits only what the next one has left...
    const late = (await reserve(t, ingestKey, reservationBody(org.member.id, { input_tokens: 0, max_output_tokens: 1000, ttl_seconds: 3600 }))).body;
    expect(late).toMatchObject({ status: 'held', granted_output_tokens: 100 });
    expect(await counters(next)).toEqual({ committed: 900n, held: 100n });
    // ...while one that ends before the reset is held in this window alone.
    const ttl = Math.floor((current.end.getTime() - Date.now()) / 1000) - 10;
    const short = (await reserve(t, ingestKey, reservationBody(org.member.id, { input_tokens: 0, max_output_tokens: 500, ttl_seconds: ttl }))).body;
    expect(short).toMatchObject({ status: 'held', granted_output_tokens: 500 });
    expect(await counters(current)).toEqual({ committed: 0n, held: 600n });
    expect(await counters(next)).toEqual({ committed: 900n, held: 100n });
    // Denied by the next window alone: it frees when that one resets.
    const denied = (await reserve(t, ingestKey, reservationBody(org.member.id, { input_tokens: 0, max_output_tokens: 10, ttl_seconds: 3600 }))).body;
    expect(denied.denied_by).toEqual([expect.objectContaining({ budget_id: budget.id, reason: 'budget_exhausted', resets_at: next.end.getTime() / 1000 })]);
    // Denied by both windows: it frees when the later one resets.
    await reserve(t, ingestKey, reservationBody(org.member.id, { input_tokens: 0, max_output_tokens: 400, min_output_tokens: 400, ttl_seconds: 30 }));
    const both = (await reserve(t, ingestKey, reservationBody(org.member.id, { input_tokens: 0, max_output_tokens: 10, ttl_seconds: 3600 }))).body;
    expect(both.budgets[0]).toMatchObject({ held: '1000', remaining: '0' });
    expect(both.denied_by).toEqual([expect.objectContaining({ budget_id: budget.id, reason: 'budget_exhausted', resets_at: next.end.getTime() / 1000 })]);
  });

  it('loads both windows from PostgreSQL, each with its own spend and holds', async () => {
    const { zone, current, next } = resetSoon();
    const org = await seedOrg(t, 'ResetLoaded');
    const budget = (await t.put(`/api/v1/llm/budgets/apikey/${org.member.id}`, blockingBudget('tokens', 1000, { timezone: zone }))).body;
    // 900 spent in this window before any counters are loaded.
    await ingestOk(t, ingestKey, [record(org.member.id, { input_tokens: 900, output_tokens: 0, created_at: Math.floor(Date.now() / 1000) })]);
    const held = (await reserve(t, ingestKey, reservationBody(org.member.id, { input_tokens: 0, max_output_tokens: 1000, ttl_seconds: 3600 }))).body;
    expect(held).toMatchObject({ status: 'held', granted_output_tokens: 100 });
    const counters = countersOf(org.org.id, budget.id);
    expect(await counters(current)).toEqual({ committed: 900n, held: 100n });
    expect(await counters(next)).toEqual({ committed: 0n, held: 100n });
  });

  it('a budget redefined near its reset holds the live holds in its new window and the next', async () => {
    const org = await seedOrg(t, 'ResetRezoned');
    const path = `/api/v1/llm/budgets/apikey/${org.member.id}`;
    const budget = (await t.put(path, blockingBudget('tokens', 1000))).body;
    const held = (await reserve(t, ingestKey, reservationBody(org.member.id, { input_tokens: 0, max_output_tokens: 300, ttl_seconds: 3600 }))).body;
    const { zone, current, next } = resetSoon();
    expect((await t.put(path, blockingBudget('tokens', 1000, { timezone: zone }))).status).toBe(200);
    const [row] = await t.dataSource.query(`SELECT holds FROM reservations WHERE org_id = $1 AND id = $2`, [org.org.id, held.id]);
    expect(row.holds).toEqual([
      { budget_id: budget.id, epoch: '1', window_start: current.start.getTime() / 1000, amount: '300' },
      { budget_id: budget.id, epoch: '1', window_start: next.start.getTime() / 1000, amount: '300' },
    ]);
    // Loaded from PostgreSQL: 700 fit in both windows.
    expect(await reserve(t, ingestKey, reservationBody(org.member.id, { input_tokens: 0, max_output_tokens: 1000, ttl_seconds: 3600 }))).toMatchObject({ body: { granted_output_tokens: 700 } });
    const counters = countersOf(org.org.id, budget.id, '1');
    expect(await counters(current)).toEqual({ committed: 0n, held: 1000n });
    expect(await counters(next)).toEqual({ committed: 0n, held: 1000n });
  });
});

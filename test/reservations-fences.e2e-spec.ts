import Redis from 'ioredis';
import { newId } from '../src/common/ids';
import { AdmissionBatches, StoreOutcome } from '../src/reservations/admission-batches';
import { ReservationCounters } from '../src/reservations/reservation-counters';
import { CounterWindow } from '../src/reservations/reservation-counter-types';
import { ReservationLoader } from '../src/reservations/reservation-loader.service';
import { Reservation } from '../src/reservations/reservation.entity';
import { ReservationsRepository } from '../src/reservations/reservations.repository';
import { blockingBudget, counters, RESERVATIONS, reservationBody, twoApiProcessesPerSuite } from './helpers/reservations';
import { budgetWindow } from '../src/budgets/budget-window';
import { seedOrg, TestApp } from './helpers/test-app';

/**
 * Admissions decide with no lock held (src/reservations/admission-batches.ts): a row is stored
 * only while the fences it decided from hold (its budgets' counter generations, its org's budget
 * set). What moves a fence between an admission's decision and its insert: a rebuild of the
 * counters, a budget change seen by another process.
 */
describe('reservations: fences between the decision and the insert', () => {
  let a: TestApp, b: TestApp, redisUrl: string, ingestKey: string;
  twoApiProcessesPerSuite((started) => ({ a, b, redisUrl, ingestKey } = started));

  /** A held reservation of the key, as an admission would store it. */
  function row(orgId: string, apiKeyId: string): Reservation {
    return Object.assign(new Reservation(), {
      orgId, id: newId('res'), apiKeyId, requestId: `fence-${newId('req')}`, userId: null, model: 'gpt-4o-mini',
      inputTokens: '10', maxOutputTokens: '10', minOutputTokens: '1', grantedOutputTokens: '10', status: 'held',
      reservedTokens: '20', reservedCostNano: '0', holds: [], decision: { denied_by: [], budgets: [] },
      expiresAt: new Date(Date.now() + 60_000), createdAt: new Date(), recordId: null, settledAt: null, releasedAt: null,
    } satisfies Partial<Reservation>);
  }

  it('a row decided from a fence that moved since is not stored; the next admission reads the budgets again', async () => {
    const org = await seedOrg(a, 'Fenced');
    const batches = new AdmissionBatches(a.dataSource);
    const request = { orgId: org.org.id, apiKeyId: org.member.id, scopes: { teamId: null, userId: null } };
    const repository = a.app.get(ReservationsRepository);
    const rebuild = (budgetId: string) => a.dataSource.transaction((manager) => repository.bumpFences(manager, org.org.id, [budgetId]));
    const outcomes: StoreOutcome[] = [];
    const stored: string[] = [];
    const movedFences: string[][] = [];
    const admit = async (decide: (budgets: string[]) => Promise<Record<string, string>>) => {
      const r = row(org.org.id, org.member.id);
      const { outcome, moved } = await batches.run(request, async (budgets, store) => store(r, await decide(budgets.map((x) => x.scope))));
      outcomes.push(outcome);
      movedFences.push(moved);
      if (outcome === 'inserted') stored.push(r.id);
    };

    // A rebuild of bud_x's counters between the decision (from generation 0) and the insert.
    await admit(async () => {
      expect(await rebuild('bud_x')).toEqual(new Map([['bud_x', '1']]));
      return { bud_x: '0' };
    });
    // Decided from the generation that rebuild stamped.
    await admit(async () => ({ bud_x: '1' }));
    // A budget of the key created (on the other process) after this batch read the key's budgets: none then.
    await admit(async (budgets) => {
      expect(budgets).toEqual([]);
      expect((await b.put(`/api/v1/llm/budgets/apikey/${org.member.id}`, blockingBudget('tokens', 100))).status).toBe(200);
      return {};
    });
    // The cached list was dropped with the stale row: the next admission sees the budget.
    await admit(async (budgets) => {
      expect(budgets).toEqual(['apikey']);
      return {};
    });
    // A budget of another key of the org changes nothing for this key's cached list.
    await admit(async (budgets) => {
      expect((await b.put(`/api/v1/llm/budgets/apikey/${org.orgAdmin.id}`, blockingBudget('tokens', 100))).status).toBe(200);
      expect(budgets).toEqual(['apikey']);
      return {};
    });
    // Its org's budget does (the org's budget target is one of this key's four).
    await admit(async () => {
      expect((await b.put(`/api/v1/llm/budgets/org/${org.org.id}`, blockingBudget('tokens', 100_000))).status).toBe(200);
      return {};
    });
    await admit(async (budgets) => {
      expect(budgets.sort()).toEqual(['apikey', 'org']);
      return {};
    });
    expect(outcomes).toEqual(['stale', 'inserted', 'stale', 'inserted', 'inserted', 'stale', 'inserted']);
    // A stale row names the fences that moved, with their values now.
    expect(movedFences).toEqual([['bud_x=1'], [], [`apikey:${org.member.id}=1`], [], [], [`org:${org.org.id}=1`], []]);
    const rows: Array<{ id: string }> = await a.dataSource.query('SELECT id FROM reservations WHERE org_id = $1', [org.org.id]);
    expect(rows.map((r) => r.id).sort()).toEqual([...stored].sort());
  });

  it('a budget lowered on one process applies to the next admission on the other, which had the old budget cached', async () => {
    const org = await seedOrg(a, 'Lowered');
    await a.put(`/api/v1/llm/budgets/apikey/${org.member.id}`, blockingBudget('tokens', 10_000));
    const body = (extra: Record<string, unknown> = {}) => reservationBody(org.member.id, { input_tokens: 50, max_output_tokens: 50, min_output_tokens: 50, ...extra });
    const first = await a.post(RESERVATIONS, body(), { key: ingestKey });
    expect(first.body).toMatchObject({ allowed: true, budgets: [{ block_limit: '10000' }] });
    // 100 tokens held: 20 left under the new limit, less than the 100 the next one needs.
    expect((await b.put(`/api/v1/llm/budgets/apikey/${org.member.id}`, blockingBudget('tokens', 120))).status).toBe(200);
    const second = await a.post(RESERVATIONS, body(), { key: ingestKey });
    expect(second.body).toMatchObject({ allowed: false, denied_by: [{ reason: 'insufficient_budget' }], budgets: [{ block_limit: '120', held: '100' }] });
    // And raised again: room for one more.
    expect((await b.put(`/api/v1/llm/budgets/apikey/${org.member.id}`, blockingBudget('tokens', 200))).status).toBe(200);
    expect((await a.post(RESERVATIONS, body(), { key: ingestKey })).body).toMatchObject({ allowed: true, budgets: [{ block_limit: '200' }] });
  });

  it('Redis flushed and the counters rebuilt by the other process between an admission’s grant and its insert: it decides again, and the counters equal PostgreSQL', async () => {
    const org = await seedOrg(a, 'Rebuilt-midway');
    const budget = (await a.put(`/api/v1/llm/budgets/apikey/${org.member.id}`, blockingBudget('tokens', 1_000))).body;
    const body = () => reservationBody(org.member.id, { input_tokens: 50, max_output_tokens: 50, min_output_tokens: 50 });
    expect((await a.post(RESERVATIONS, body(), { key: ingestKey })).body.allowed).toBe(true);

    const counterService = a.app.get(ReservationCounters);
    const admit = counterService.admit;
    const flusher = new Redis(redisUrl);
    let injected = 0;
    // Right after process a's first grant: Redis loses everything, and process b rebuilds the
    // window from PostgreSQL (where a's row is not yet) and grants one of its own.
    counterService.admit = async function (this: ReservationCounters, req) {
      const outcome = await admit.call(this, req);
      if (injected++ === 0) {
        await flusher.flushdb();
        const other = await b.post(RESERVATIONS, body(), { key: ingestKey });
        expect(other.body.allowed).toBe(true);
      }
      return outcome;
    };
    try {
      const res = await a.post(RESERVATIONS, body(), { key: ingestKey });
      expect(res.status).toBe(200);
      expect(res.body.allowed).toBe(true);
      // Decided twice: the first grant, from the lost counters, was not stored.
      expect(injected).toBe(2);
      const [{ n }] = await a.dataSource.query('SELECT COUNT(*)::int AS n FROM reservations WHERE id = $1', [res.body.id]);
      expect(n).toBe(1);
    } finally {
      counterService.admit = admit;
      flusher.disconnect();
    }
    const [stored] = await a.dataSource.query(`SELECT COUNT(*)::int AS held, SUM(reserved_tokens)::text AS tokens FROM reservations WHERE org_id = $1 AND status = 'held'`, [org.org.id]);
    expect(stored).toEqual({ held: 3, tokens: '300' });
    expect(await counters(a, org.org.id, budget.id)).toEqual({ committed: 0n, held: 300n });
  });

  /** Today's window of a daily budget, as the counters key it. */
  function today(orgId: string, budgetId: string): CounterWindow {
    const w = budgetWindow('daily', new Date());
    return { orgId, budgetId, epoch: '0', start: w.start.getTime() / 1000, end: w.end.getTime() / 1000 };
  }

  it('a repair whose read is older than the counters now in Redis does not replace them (their generation is newer)', async () => {
    const org = await seedOrg(a, 'Older-repair');
    const budget = (await a.put(`/api/v1/llm/budgets/apikey/${org.member.id}`, blockingBudget('tokens', 1_000))).body;
    expect((await a.post(RESERVATIONS, reservationBody(org.member.id), { key: ingestKey })).body.allowed).toBe(true);
    const counterService = a.app.get(ReservationCounters);
    const window = today(org.org.id, budget.id);
    const token = await counterService.beginReconcile(window);
    expect(token).not.toBeNull();
    // One repair of a window at a time: another worker's begins nothing, and cannot finish this one's.
    expect(await counterService.beginReconcile(window)).toBeNull();
    expect(await counterService.finishReconcile(window, 0n, [], [], '500', 'not-the-token')).toBeUndefined();
    // An admission's re-stamp waits for the repair under way (stamping first would cancel it).
    expect(await counterService.restamp(window, '1000')).toBe(false);
    // A rebuild with a newer generation stamps the loaded counters (forward only, counters kept),
    // and a grant may be stored under it.
    expect(await counterService.finishLoad(window, 0n, [], [], '1000', '')).toBe(false);
    // The repair's read (no holds) is older than that: it must change nothing.
    expect(await counterService.finishReconcile(window, 0n, [], [], '999', token!)).toBeUndefined();
    expect(await counters(a, org.org.id, budget.id)).toEqual({ committed: 0n, held: 100n });
    // Nor does a rebuild's load of an older read over loaded counters, and with no repair under
    // way a re-stamp goes forward only.
    expect(await counterService.finishLoad(window, 0n, [], [], '998', '')).toBe(false);
    expect(await counterService.restamp(window, '1000')).toBe(false);
    expect(await counterService.restamp(window, '1001')).toBe(true);
    expect(await counters(a, org.org.id, budget.id)).toEqual({ committed: 0n, held: 100n });
  });

  it('a rebuild that began before the window was lost again cannot load its older read; the rebuild begun since can', async () => {
    const org = await seedOrg(a, 'Lost-twice');
    const counterService = a.app.get(ReservationCounters);
    const window = today(org.org.id, 'bud_lost_twice');
    const [first] = await counterService.beginLoad([window]);
    // A second rebuild of the same window while the first runs shares its token (and its pending records).
    expect(await counterService.beginLoad([window])).toEqual([first]);
    const flusher = new Redis(redisUrl);
    try {
      await flusher.flushdb();
    } finally {
      flusher.disconnect();
    }
    const [second] = await counterService.beginLoad([window]);
    expect(second).not.toBe(first);
    expect(await counterService.finishLoad(window, 0n, [], [], '3', first)).toBe(false);
    expect(await counterService.read(window)).toBeNull();
    expect(await counterService.finishLoad(window, 0n, [], [], '4', second)).toBe(true);
    expect(await counterService.read(window)).toEqual({ committed: 0n, held: 0n });
  });

  it('a generation left behind its fence (a repair that never stamped this window) is stamped again, and admissions go on', async () => {
    const org = await seedOrg(a, 'Left-behind');
    const budget = (await a.put(`/api/v1/llm/budgets/apikey/${org.member.id}`, blockingBudget('tokens', 1_000))).body;
    const body = () => reservationBody(org.member.id, { input_tokens: 50, max_output_tokens: 50, min_output_tokens: 50 });
    expect((await a.post(RESERVATIONS, body(), { key: ingestKey })).body.allowed).toBe(true);
    // The budget's fence moves with nobody to stamp today's counters (as a repair of yesterday's window would).
    await a.dataSource.transaction((manager) => a.app.get(ReservationsRepository).bumpFences(manager, org.org.id, [budget.id]));
    const res = await b.post(RESERVATIONS, body(), { key: ingestKey });
    expect(res.status).toBe(200);
    expect(res.body.allowed).toBe(true);
    const [stored] = await a.dataSource.query(`SELECT COUNT(*)::int AS held, SUM(reserved_tokens)::text AS tokens FROM reservations WHERE org_id = $1 AND status = 'held'`, [org.org.id]);
    expect(stored).toEqual({ held: 2, tokens: '200' });
    expect(await counters(a, org.org.id, budget.id)).toEqual({ committed: 0n, held: 200n });
  });

  it('an admission that gives up (its fences never hold) lets go of its request id: the same request id is decided afresh', async () => {
    const org = await seedOrg(a, 'Gave-up');
    const budget = (await a.put(`/api/v1/llm/budgets/apikey/${org.member.id}`, blockingBudget('tokens', 1_000))).body;
    expect((await a.post(RESERVATIONS, reservationBody(org.member.id), { key: ingestKey })).body.allowed).toBe(true);
    // Stamps are lost (Redis answers but drops them), and the fence moves: no try can be stored.
    const loader = a.app.get(ReservationLoader);
    const restamp = loader.restamp;
    loader.restamp = async () => undefined;
    await a.dataSource.transaction((manager) => a.app.get(ReservationsRepository).bumpFences(manager, org.org.id, [budget.id]));
    const body = reservationBody(org.member.id);
    try {
      const gaveUp = await a.post(RESERVATIONS, body, { key: ingestKey });
      expect(gaveUp.status).toBe(503);
      expect(gaveUp.body.error.code).toBe('redis_unavailable');
    } finally {
      loader.restamp = restamp;
    }
    const retried = await a.post(RESERVATIONS, body, { key: ingestKey });
    expect(retried.status).toBe(200);
    expect(retried.body.allowed).toBe(true);
    expect(await counters(a, org.org.id, budget.id)).toEqual({ committed: 0n, held: 200n });
  });
});

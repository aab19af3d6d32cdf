import { AlertEvaluatorService } from '../src/alerts/alert-evaluator.service';
import { BudgetEvaluator } from '../src/budgets/budget-evaluator';
import { Budget } from '../src/budgets/budget.entity';
import { budgetWindow, BudgetWindow, formatWindow } from '../src/budgets/budget-window';
import { alertRows, backdateBudget } from './helpers/alerts';
import { costBudget } from './helpers/budgets';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { ingestOk, record } from './helpers/usage';
import { waitFor } from './helpers/wait-for';

const NANO = 1_000_000_000n;
const s = (date: Date) => Math.floor(date.getTime() / 1000);

describe('budget time zones and forecasts (SPEC §4.2)', () => {
  let t: TestApp;
  let ingestKey: string;

  beforeAll(async () => {
    t = await startTestApp({ ALERT_EVALUATION_INTERVAL_MS: '3600000' });
    ingestKey = (await createSystemKey(t, 'ingest')).key;
  });
  afterAll(() => t.close());

  /** Ingests one record per instant (Unix seconds), each of `costNano`. */
  const spendAt = (apiKeyId: string, instants: number[], costNano: bigint) =>
    ingestOk(
      t,
      ingestKey,
      instants.map((at) => record(apiKeyId, { created_at: at, cost_nano: costNano.toString(), input_tokens: 1, output_tokens: 1 })),
    );

  const evaluateIn = async (budgetId: string, window: BudgetWindow) => {
    const budget = await t.dataSource.getRepository(Budget).findOneByOrFail({ id: budgetId });
    const [evaluation] = await t.app.get(BudgetEvaluator).evaluate([{ budget, window }]);
    return evaluation;
  };

  it('refuses an unknown time zone with a 400 naming the field, and stores nothing', async () => {
    const { org } = await seedOrg(t, `tz-bad-${Math.random()}`);
    for (const timezone of ['Mars/Olympus_Mons', '+01:00', 'Europe/Amsterdam ', '', 42]) {
      const res = await t.put(`/api/v1/llm/budgets/org/${org.id}`, costBudget(1, { timezone }));
      expect(res.status).toBe(400);
      expect(res.body.error.type).toBe('invalid_request_error');
      expect(res.body.error.param).toBe('timezone');
    }
    expect((await t.get(`/api/v1/llm/budgets/org/${org.id}`)).body.data).toEqual([]);
  });

  it('defaults to UTC and shows the zone and its offsets in spend.window', async () => {
    const { org } = await seedOrg(t, `tz-default-${Math.random()}`);
    const utc = await t.put(`/api/v1/llm/budgets/org/${org.id}`, costBudget(1));
    expect(utc.status).toBe(200);
    expect(utc.body.timezone).toBe('UTC');
    expect(utc.body.spend.window).toBe(formatWindow(budgetWindow('daily', new Date())));
    expect(utc.body.spend.window).toMatch(/^\d{4}-\d\d-\d\dT00:00:00Z\/\d{4}-\d\d-\d\dT00:00:00Z$/);

    const res = await t.put(`/api/v1/llm/budgets/org/${org.id}`, costBudget(1, { timezone: 'Asia/Kolkata', period: 'monthly' }));
    expect(res.status).toBe(200);
    expect(res.body.timezone).toBe('Asia/Kolkata');
    const window = budgetWindow('monthly', new Date(), 'Asia/Kolkata');
    expect(res.body.spend.window).toMatch(/^\d{4}-\d\d-01T00:00:00\+05:30\/\d{4}-\d\d-01T00:00:00\+05:30$/);
    expect(res.body.spend.resets_at).toBe(s(window.end));
    expect(new Date(res.body.spend.window.split('/')[1]).getTime()).toBe(window.end.getTime());
  });

  it('stores a time zone in the database\'s spelling when only its letter case differs (utc → UTC), and keeps an alias as it names it', async () => {
    const { org } = await seedOrg(t, `tz-case-${Math.random()}`);
    const lower = await t.put(`/api/v1/llm/budgets/org/${org.id}`, costBudget(1, { timezone: 'utc' }));
    expect(lower.status).toBe(200);
    expect(lower.body.timezone).toBe('UTC');
    expect(lower.body.spend.window).toMatch(/^\d{4}-\d\d-\d\dT00:00:00Z\//);
    const amsterdam = await t.put(`/api/v1/llm/budgets/org/${org.id}`, costBudget(1, { timezone: 'europe/AMSTERDAM' }));
    expect(amsterdam.body.timezone).toBe('Europe/Amsterdam');
    const stored = await t.dataSource.query(`SELECT timezone FROM budgets WHERE id = $1`, [amsterdam.body.id]);
    expect(stored).toEqual([{ timezone: 'Europe/Amsterdam' }]);
    expect((await t.put(`/api/v1/llm/budgets/org/${org.id}`, costBudget(1, { timezone: 'US/Pacific' }))).body.timezone).toBe('US/Pacific');
    // Current tz database names that this runtime's ICU lists under older ones (Asia/Calcutta, Europe/Kiev).
    for (const [sent, stored] of [['asia/kolkata', 'Asia/Kolkata'], ['europe/kyiv', 'Europe/Kyiv'], ['etc/utc', 'Etc/UTC']]) {
      expect((await t.put(`/api/v1/llm/budgets/org/${org.id}`, costBudget(1, { timezone: sent }))).body.timezone).toBe(stored);
    }
  });

  it('Europe/Amsterdam: windows across both 2026 daylight-saving days (23 h and 25 h), with exact spend and alerts per local day', async () => {
    const { org, member } = await seedOrg(t, `tz-ams-${Math.random()}`);
    // Limit 23 at one unit per hour: the 23-hour day reaches it exactly; a 24-hour day would be needed to pass it.
    const put = await t.put(
      `/api/v1/llm/budgets/apikey/${member.id}`,
      costBudget(25, { timezone: 'Europe/Amsterdam', thresholds: [{ pct: 92, action: 'alert' }, { pct: 100, action: 'block' }] }),
    );
    expect(put.status).toBe(200);
    const spring = budgetWindow('daily', new Date('2026-03-29T12:00:00Z'), 'Europe/Amsterdam');
    const autumn = budgetWindow('daily', new Date('2026-10-25T12:00:00Z'), 'Europe/Amsterdam');
    expect(formatWindow(spring, 'Europe/Amsterdam')).toBe('2026-03-29T00:00:00+01:00/2026-03-30T00:00:00+02:00');
    expect(formatWindow(autumn, 'Europe/Amsterdam')).toBe('2026-10-25T00:00:00+02:00/2026-10-26T00:00:00+01:00');
    expect(spring.start.toISOString()).toBe('2026-03-28T23:00:00.000Z');
    expect(spring.end.getTime() - spring.start.getTime()).toBe(23 * 3_600_000);
    expect(autumn.start.toISOString()).toBe('2026-10-24T22:00:00.000Z');
    expect(autumn.end.getTime() - autumn.start.getTime()).toBe(25 * 3_600_000);

    // One unit at the first second of every local hour, and one just before and at each edge outside.
    for (const day of [spring, autumn]) {
      const hours = (day.end.getTime() - day.start.getTime()) / 3_600_000;
      const inside = Array.from({ length: hours }, (_v, h) => s(day.start) + h * 3600 + (h === hours - 1 ? 3599 : 0));
      await spendAt(member.id, [s(day.start) - 1, ...inside, s(day.end)], NANO);
    }
    const springEval = await evaluateIn(put.body.id, spring);
    const autumnEval = await evaluateIn(put.body.id, autumn);
    expect(springEval.spend.costNano).toBe(23n * NANO);
    expect(autumnEval.spend.costNano).toBe(25n * NANO);
    // The UTC day of 2026-03-29 holds 22 of the local hours and the record at the local day's end.
    const utcDay = { start: new Date('2026-03-29T00:00:00Z'), end: new Date('2026-03-30T00:00:00Z') };
    expect((await evaluateIn(put.body.id, utcDay)).spend.costNano).toBe(23n * NANO);

    expect(springEval.reached.map((x) => x.pct)).toEqual([92]);
    expect(autumnEval.reached.map((x) => x.pct)).toEqual([92, 100]);
    expect(autumnEval.blocked).toBe(true);
    const alerts = t.app.get(AlertEvaluatorService);
    // (While 2026-10-25 is within the 40-day late-record horizon, the ingest itself already alerted for it.)
    await alerts.recordCrossings([springEval, autumnEval]);
    expect(await alerts.recordCrossings([springEval, autumnEval])).toBe(0); // once per (budget, window, pct)
    const rows = await alertRows(t, put.body.id);
    expect(rows.map((r) => [Number(r.threshold_pct), new Date(r.window_start).toISOString(), JSON.parse(r.body).data.window])).toEqual([
      [92, '2026-03-28T23:00:00.000Z', '2026-03-29T00:00:00+01:00/2026-03-30T00:00:00+02:00'],
      [92, '2026-10-24T22:00:00.000Z', '2026-10-25T00:00:00+02:00/2026-10-26T00:00:00+01:00'],
      [100, '2026-10-24T22:00:00.000Z', '2026-10-25T00:00:00+02:00/2026-10-26T00:00:00+01:00'],
    ]);
    const autumnBody = JSON.parse(rows[2].body).data.budget;
    expect(autumnBody.timezone).toBe('Europe/Amsterdam');
    expect(autumnBody.spend).toMatchObject({ cost_spent_nano: '25000000000', resets_at: s(autumn.end), window: '2026-10-25T00:00:00+02:00/2026-10-26T00:00:00+01:00' });
  });

  it('a late record alerts for its local window, also when that is not the window of its UTC day', async () => {
    const { member } = await seedOrg(t, `tz-late-${Math.random()}`);
    const put = await t.put(`/api/v1/llm/budgets/apikey/${member.id}`, costBudget(1, { timezone: 'Europe/Amsterdam' }));
    await backdateBudget(t, put.body.id); // it existed in the window of the late record
    expect(put.status).toBe(200);
    // 00:30 local on the previous local day is 23:30 (or 22:30) UTC on the UTC day before it.
    const yesterday = budgetWindow('daily', new Date(Date.now() - 86_400_000), 'Europe/Amsterdam');
    const at = s(yesterday.start) + 1800;
    expect(new Date(at * 1000).toISOString().slice(0, 10)).not.toBe(formatWindow(yesterday, 'Europe/Amsterdam').slice(0, 10));
    await spendAt(member.id, [at], 2n * NANO);
    const rows = await waitFor(async () => {
      const found = await alertRows(t, put.body.id);
      return found.length === 2 ? found : null;
    }, 'the late record\'s alerts');
    expect(rows.map((r) => JSON.parse(r.body).data.window)).toEqual([formatWindow(yesterday, 'Europe/Amsterdam'), formatWindow(yesterday, 'Europe/Amsterdam')]);
    expect(rows.every((r) => new Date(r.window_start).getTime() === yesterday.start.getTime())).toBe(true);
  });

  it.each([
    ['Asia/Kolkata', '+05:30'],
    ['Asia/Kathmandu', '+05:45'],
  ])('%s: the live spend of the current local day is exact at its edges (minute rollups)', async (zone, offset) => {
    const { org, member } = await seedOrg(t, `tz-${zone}-${Math.random()}`);
    const now = new Date();
    const window = budgetWindow('daily', now, zone);
    const start = s(window.start);
    const nowS = s(now);
    // Outside: the last second and the last minute before local midnight. Inside: its first second, the rest of its first minute, and now.
    await spendAt(member.id, [start - 1, start - 60, start - 3600], 7n * NANO);
    const inside = [start, start + 59, Math.min(start + 61, nowS), nowS];
    await spendAt(member.id, inside, 3n * NANO);
    const res = await t.put(`/api/v1/llm/budgets/org/${org.id}`, costBudget(1000, { timezone: zone }));
    expect(res.status).toBe(200);
    expect(res.body.spend.window).toBe(formatWindow(window, zone));
    expect(res.body.spend.window.endsWith(offset)).toBe(true);
    expect(res.body.spend.cost_spent_nano).toBe((3n * NANO * BigInt(inside.length)).toString());
    const read = await t.get(`/api/v1/llm/budgets/${res.body.id}`);
    expect(read.body.spend.cost_spent_nano).toBe((3n * NANO * BigInt(inside.length)).toString());
    expect(read.body.spend.resets_at).toBe(s(window.end));
  });

  describe('spend.forecast_exhaustion_at', () => {
    it('is null with no spend, and when the limit is not reached within the window', async () => {
      const { member } = await seedOrg(t, `fc-null-${Math.random()}`);
      const res = await t.put(`/api/v1/llm/budgets/apikey/${member.id}`, costBudget(10, { period: 'monthly' }));
      expect(res.body.spend.forecast_exhaustion_at).toBeNull();
      await spendAt(member.id, [s(new Date())], 1n); // one nano-unit: at this rate the window ends first
      expect((await t.get(`/api/v1/llm/budgets/${res.body.id}`)).body.spend.forecast_exhaustion_at).toBeNull();
    });

    it('equals the hand computation at the window\'s average rate, towards the lowest block threshold', async () => {
      const { member } = await seedOrg(t, `fc-steady-${Math.random()}`);
      const window = budgetWindow('monthly', new Date());
      const start = s(window.start);
      const elapsed0 = s(new Date()) - start;
      // Steady spend: 0.25 at four evenly spaced instants since the month began.
      await spendAt(
        member.id,
        [0, 1, 2, 3].map((i) => start + Math.floor((i * elapsed0) / 4)),
        250_000_000n,
      );
      const thresholds = [
        { pct: 50, action: 'alert' },
        { pct: 90, action: 'block' },
        { pct: 80, action: 'block' },
      ];
      const before = s(new Date());
      const res = await t.put(`/api/v1/llm/budgets/apikey/${member.id}`, costBudget(3000, { period: 'monthly', thresholds }));
      const after = s(new Date());
      expect(res.status).toBe(200);
      expect(res.body.spend.cost_spent_nano).toBe('1000000000');
      // Target 80 % of 3000 = 2400 at 1.0 per `elapsed` seconds: start + ⌈2400 × elapsed / 1⌉.
      const hand = (now: number) => start + 2400 * (now - start);
      const candidates = Array.from({ length: after - before + 1 }, (_v, i) => hand(before + i)).filter((eta) => eta < s(window.end));
      if (candidates.length === 0) {
        expect(res.body.spend.forecast_exhaustion_at).toBeNull(); // too late in the month to reach it
      } else {
        expect(candidates).toContain(res.body.spend.forecast_exhaustion_at);
      }
      // A limit just above the spend: reached within the window, exactly by the formula, rounded up.
      const near = await t.put(`/api/v1/llm/budgets/apikey/${member.id}`, costBudget(1.5, { period: 'monthly', thresholds: [{ pct: 100, action: 'block' }] }));
      const nearAfter = s(new Date());
      const exact = (now: number) => start + Math.ceil((3 * (now - start)) / 2); // 1.5 / 1.0 × elapsed
      expect(Array.from({ length: nearAfter - before + 1 }, (_v, i) => exact(before + i))).toContain(near.body.spend.forecast_exhaustion_at);
      expect(near.body.spend.forecast_exhaustion_at).toBeLessThan(s(window.end));
    });
  });
});

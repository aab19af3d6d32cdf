import { evaluateBudget, existedDuring, previousWindow, windowsHolding } from './budget-evaluation';
import { Budget } from './budget.entity';
import { budgetWindow } from './budget-window';

function budget(partial: Partial<Budget>): Budget {
  return Object.assign(new Budget(), {
    id: 'bud_x',
    period: 'daily',
    limitKind: 'cost',
    limitValue: '10.000000000',
    thresholds: [
      { pct: 50, action: 'alert' },
      { pct: 100, action: 'block' },
    ],
    ...partial,
  });
}
const window = budgetWindow('daily', new Date('2026-11-21T12:00:00Z'));

describe('evaluateBudget', () => {
  it('compares exactly at the threshold (cost)', () => {
    const below = evaluateBudget(budget({}), { costNano: 4_999_999_999n, tokens: 0n }, window);
    expect(below.reached).toEqual([]);
    expect(below.pct).toBe(49.999999); // truncated to 6 decimals
    const at = evaluateBudget(budget({}), { costNano: 5_000_000_000n, tokens: 0n }, window);
    expect(at.reached).toEqual([{ pct: 50, action: 'alert' }]);
    expect(at.pct).toBe(50);
    expect(at.blocked).toBe(false);
    const over = evaluateBudget(budget({}), { costNano: 10_000_000_000n, tokens: 0n }, window);
    expect(over.blocked).toBe(true);
    expect(over.pct).toBe(100);
  });

  it('counts tokens against token limits with fractional limits (the seed: 3281.35)', () => {
    const b = budget({ limitKind: 'tokens', limitValue: '3281.350000000', thresholds: [{ pct: 100, action: 'block' }] });
    expect(evaluateBudget(b, { costNano: 999_999_999_999n, tokens: 3281n }, window).blocked).toBe(false);
    const over = evaluateBudget(b, { costNano: 0n, tokens: 3282n }, window);
    expect(over.blocked).toBe(true);
    expect(over.pct).toBe(100.019808); // 3282 / 3281.35, truncated
  });

  it('supports fractional threshold percents and huge spends without precision loss', () => {
    const b = budget({ limitValue: '1000000000.000000000', thresholds: [{ pct: 33.333333, action: 'alert' }] });
    expect(evaluateBudget(b, { costNano: 333_333_329_999_999_999n, tokens: 0n }, window).reached).toEqual([]);
    expect(evaluateBudget(b, { costNano: 333_333_330_000_000_000n, tokens: 0n }, window).reached).toHaveLength(1);
  });
});

describe('windows to evaluate (SPEC §5: every window counts)', () => {
  const now = new Date('2026-11-21T00:00:05Z'); // five seconds into a Saturday
  const at = (iso: string) => new Date(iso);
  const starts = (windows: Array<{ start: Date }>) => windows.map((w) => w.start.toISOString());

  it('the previous window is the one that just ended', () => {
    expect(previousWindow(budget({ period: 'daily' }), now)).toEqual(budgetWindow('daily', at('2026-11-20T12:00:00Z')));
    expect(previousWindow(budget({ period: 'weekly' }), now).start.toISOString()).toBe('2026-11-09T00:00:00.000Z');
    expect(previousWindow(budget({ period: 'monthly' }), now).start.toISOString()).toBe('2026-10-01T00:00:00.000Z');
  });

  it('the windows holding the records, each once, within 40 days and not in the future', () => {
    const daily = budget({ period: 'daily' });
    const instants = [at('2026-11-20T23:59:59Z'), at('2026-11-20T01:00:00Z'), at('2026-11-21T00:00:01Z'), at('2026-10-12T00:00:00Z'), at('2026-10-11T23:00:00Z'), at('2026-11-22T00:00:00Z')];
    expect(starts(windowsHolding(daily, instants, now))).toEqual(['2026-10-12T00:00:00.000Z', '2026-11-20T00:00:00.000Z', '2026-11-21T00:00:00.000Z']);
    expect(starts(windowsHolding(budget({ period: 'monthly' }), instants, now))).toEqual(['2026-10-01T00:00:00.000Z', '2026-11-01T00:00:00.000Z']);
  });

  it('leaves out the windows that ended before the budget was created (no such budget applied then)', () => {
    const created = budget({ period: 'daily', createdAt: at('2026-11-20T10:00:00Z') });
    const instants = [at('2026-11-19T12:00:00Z'), at('2026-11-20T01:00:00Z'), at('2026-11-21T00:00:01Z')];
    expect(starts(windowsHolding(created, instants, now))).toEqual(['2026-11-20T00:00:00.000Z', '2026-11-21T00:00:00.000Z']);
    const today = budget({ period: 'daily', createdAt: at('2026-11-21T00:00:02Z') });
    expect(starts(windowsHolding(today, instants, now))).toEqual(['2026-11-21T00:00:00.000Z']);
    expect(existedDuring(today, previousWindow(today, now))).toBe(false);
    expect(existedDuring(created, previousWindow(created, now))).toBe(true);
  });
});

describe('forecastExhaustion (SPEC §4.2)', () => {
  const day = { start: new Date('2026-11-21T00:00:00Z'), end: new Date('2026-11-22T00:00:00Z') };
  const at = (iso: string) => new Date(iso);

  it('is null with no spend, or when the target is not reached before the window ends', () => {
    expect(evaluateBudget(budget({}), { costNano: 0n, tokens: 0n }, day, at('2026-11-21T06:00:00Z')).forecastExhaustionAt).toBeNull();
    // 10 over 24 h at 4 per 12 h: reached after 30 h.
    expect(evaluateBudget(budget({}), { costNano: 4_000_000_000n, tokens: 0n }, day, at('2026-11-21T12:00:00Z')).forecastExhaustionAt).toBeNull();
  });

  it('is start + ⌈target × elapsed / spent⌉ towards the lowest block pct', () => {
    // Limit 10, block at 100: 3 spent in 6 h → 10 after 20 h.
    expect(evaluateBudget(budget({}), { costNano: 3_000_000_000n, tokens: 0n }, day, at('2026-11-21T06:00:00Z')).forecastExhaustionAt).toBe(
      Date.parse('2026-11-21T20:00:00Z') / 1000,
    );
    // Block at 80 and 90: target 8; 3 spent in 7 s → ⌈8 × 7 / 3⌉ = 19 s (rounded up).
    const b = budget({ thresholds: [{ pct: 90, action: 'block' }, { pct: 80, action: 'block' }, { pct: 50, action: 'alert' }] });
    expect(evaluateBudget(b, { costNano: 3_000_000_000n, tokens: 0n }, day, at('2026-11-21T00:00:07Z')).forecastExhaustionAt).toBe(Date.parse(day.start.toISOString()) / 1000 + 19);
    // Without a block threshold, 100 %; tokens budgets count tokens.
    const tokens = budget({ limitKind: 'tokens', limitValue: '1000.000000000', thresholds: [{ pct: 50, action: 'alert' }] });
    expect(evaluateBudget(tokens, { costNano: 0n, tokens: 250n }, day, at('2026-11-21T01:00:00Z')).forecastExhaustionAt).toBe(Date.parse('2026-11-21T04:00:00Z') / 1000);
  });

  it('is the time of the evaluation once the target is reached (never a time in the past)', () => {
    // Limit 10: 12 spent by 06:00 (the average-rate line crossed 10 at 05:00).
    expect(evaluateBudget(budget({}), { costNano: 12_000_000_000n, tokens: 0n }, day, at('2026-11-21T06:00:00Z')).forecastExhaustionAt).toBe(Date.parse('2026-11-21T06:00:00Z') / 1000);
    expect(evaluateBudget(budget({}), { costNano: 10_000_000_000n, tokens: 0n }, day, at('2026-11-21T06:00:00Z')).forecastExhaustionAt).toBe(Date.parse('2026-11-21T06:00:00Z') / 1000);
    // A window already over (a late record's, evaluated days later): the evaluation's time, not the window's end.
    expect(evaluateBudget(budget({}), { costNano: 12_000_000_000n, tokens: 0n }, day, at('2026-12-03T10:00:00Z')).forecastExhaustionAt).toBe(Date.parse('2026-12-03T10:00:00Z') / 1000);
  });
});

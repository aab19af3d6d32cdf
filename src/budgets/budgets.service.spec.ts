import { prng } from '../common/random';
import { storedPct } from './budgets.service';

describe('storedPct: a validated pct is stored as a JSON number without losing a digit', () => {
  it.each(['0.000001', '33.333333', '793338', '999999999.999999', '1000000000', '536870912.000001', '0.1', '100'])('%s', (pct) => {
    const value = storedPct(pct);
    // What TypeORM writes into the jsonb column, and what reading it back gives.
    expect(JSON.stringify({ pct: value })).toBe(`{"pct":${pct}}`);
    expect(JSON.parse(JSON.stringify({ pct: value })).pct).toBe(value);
  });

  it('holds for every decimal of at most 6 places up to 10^9 (sampled)', () => {
    const rand = prng(11);
    const lost: string[] = [];
    for (let i = 0; i < 200_000; i++) {
      const whole = Math.floor(rand() * 1e9);
      const fraction = String(Math.floor(rand() * 1e6)).padStart(6, '0').replace(/0+$/, '');
      const pct = fraction ? `${whole}.${fraction}` : String(whole || 1);
      if (JSON.stringify(Number(pct)) !== pct) lost.push(pct);
    }
    expect(lost).toEqual([]);
  });

  it('refuses a decimal a double cannot hold', () => {
    expect(() => storedPct('123456789012345.123456')).toThrow(RangeError);
  });
});

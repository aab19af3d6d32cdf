import { Budget } from '../budgets/budget.entity';
import { computeCostNano } from '../common/money';
import { blockLimitOf, costTerms, holdCostNano, lowestBlockPct, MAX_EXACT } from './reservation-budgets';

function budget(limitKind: 'tokens' | 'cost', limitValue: string, thresholds: Budget['thresholds']): Budget {
  return Object.assign(new Budget(), { id: 'bud_x', limitKind, limitValue, thresholds, period: 'daily' });
}

describe('reservation budgets', () => {
  it('takes the lowest block pct, ignoring alerts', () => {
    expect(lowestBlockPct(budget('tokens', '100', [{ pct: 50, action: 'alert' }, { pct: 120, action: 'block' }, { pct: 90, action: 'block' }]))).toBe(90);
    expect(lowestBlockPct(budget('tokens', '100', [{ pct: 50, action: 'alert' }]))).toBeUndefined();
  });

  it('rounds the block limit up, so it agrees with the check (spend ≥ pct × limit blocks)', () => {
    expect(blockLimitOf(budget('tokens', '10000.000000000', []), 100)).toBe(10_000n);
    expect(blockLimitOf(budget('tokens', '199.000000000', []), 50)).toBe(100n); // 99.5 → 100
    expect(blockLimitOf(budget('cost', '0.062500000', []), 100)).toBe(62_500_000n);
    expect(blockLimitOf(budget('cost', '1.000000000', []), 33.333333)).toBe(333_333_330n);
  });

  it('clamps block limits to 2^53 − 1 (the admission script compares doubles)', () => {
    expect(blockLimitOf(budget('cost', '1000000000000000.000000000', []), 100)).toBe(MAX_EXACT);
  });

  it('splits the price so that q1 + g·qo + floor((r1 + g·ro + 500000) / 1e6) is the price book cost, exactly', () => {
    const prices = { inputPerMtokNano: 2_500_000_001n, cachedInputPerMtokNano: 0n, outputPerMtokNano: 10_000_000_003n };
    for (const [input, output] of [[0, 0], [1, 1], [50, 50], [1200, 4096], [999_999, 1_000_001]]) {
      const { q1, r1, qo, ro } = costTerms(input, prices);
      const g = BigInt(output);
      const viaTerms = q1 + g * qo + (r1 + g * ro + 500_000n) / 1_000_000n;
      expect(viaTerms).toBe(holdCostNano(input, output, prices));
      expect(viaTerms).toBe(computeCostNano({ inputTokens: input, inputCachedTokens: 0, outputTokens: output }, prices));
    }
  });
});

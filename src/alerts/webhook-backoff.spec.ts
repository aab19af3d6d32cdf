import { nominalRetrySpanMs, retryDelayMs } from './webhook-backoff';

describe('webhook retry backoff', () => {
  it('doubles from the base, is capped at 480 × base, and jitters within ±20 %', () => {
    const nominal = [15, 30, 60, 120, 240, 480, 960, 1920, 3840, 7200, 7200].map((s) => s * 1000);
    nominal.forEach((expected, i) => {
      const delay = retryDelayMs(i + 1, 15_000, 'deliver-alrt_x');
      expect(delay).toBeGreaterThanOrEqual(expected * 0.8);
      expect(delay).toBeLessThan(expected * 1.2);
    });
  });

  it('is deterministic per job and attempt, and differs between jobs', () => {
    expect(retryDelayMs(3, 15_000, 'deliver-a')).toBe(retryDelayMs(3, 15_000, 'deliver-a'));
    const spread = new Set(Array.from({ length: 20 }, (_, i) => retryDelayMs(3, 15_000, `deliver-${i}`)));
    expect(spread.size).toBeGreaterThan(15);
  });

  it('spans about a day with the defaults (20 attempts, 15 s base)', () => {
    const hours = nominalRetrySpanMs(20, 15_000) / 3_600_000;
    expect(hours).toBeGreaterThan(20);
    expect(hours).toBeLessThan(26);
  });
});

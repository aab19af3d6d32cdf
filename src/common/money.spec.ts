import {
  computeCostNano,
  divideRoundHalfUp,
  formatNano,
  MAX_BIGINT,
  nanoToNumber,
  numberToDecimalString,
  parseDecimalToNano,
} from './money';

describe('money', () => {
  describe('parseDecimalToNano', () => {
    it.each([
      ['2.50', 2_500_000_000n],
      ['0', 0n],
      ['10', 10_000_000_000n],
      ['0.000000001', 1n],
      ['1.123456789', 1_123_456_789n],
      ['9223372036.854775807', MAX_BIGINT],
      ['007.5', 7_500_000_000n],
    ])('parses %s exactly', (text, nano) => {
      expect(parseDecimalToNano(text)).toBe(nano);
    });

    it.each(['', '-1', '1.', '.5', '1.0000000001', '1e3', ' 1', '1,5', 'NaN', '0x10'])('rejects %j', (text) => {
      expect(() => parseDecimalToNano(text)).toThrow(RangeError);
    });
  });

  describe('numberToDecimalString', () => {
    it.each([
      [2.5, '2.5'],
      [10, '10'],
      [0.1, '0.1'],
      [1e-7, '0.0000001'],
      [1.5e-8, '0.000000015'],
      [1.23e-9, '0.00000000123'],
      [1e21, '1000000000000000000000'],
      [1.5e22, '15000000000000000000000'],
      [-2.5e-7, '-0.00000025'],
    ])('writes %p as %s', (value, text) => {
      expect(numberToDecimalString(value)).toBe(text);
    });

    it('refuses non-finite numbers', () => {
      expect(() => numberToDecimalString(Infinity)).toThrow(RangeError);
      expect(() => numberToDecimalString(NaN)).toThrow(RangeError);
    });
  });

  describe('formatNano and nanoToNumber', () => {
    it.each([
      [0n, '0'],
      [1n, '0.000000001'],
      [2_500_000_000n, '2.5'],
      [10_000_000_000n, '10'],
      [-1_500_000_000n, '-1.5'],
      [MAX_BIGINT, '9223372036.854775807'],
    ])('formats %p as %s', (nano, text) => {
      expect(formatNano(nano)).toBe(text);
      expect(parseDecimalToNano(text.replace('-', ''))).toBe(nano < 0n ? -nano : nano);
    });

    it('makes a number only from the exact decimal', () => {
      expect(nanoToNumber(100_000_000n)).toBe(0.1);
      expect(nanoToNumber(300_000_000n)).toBe(0.3); // not 0.1 + 0.2
      expect(nanoToNumber(MAX_BIGINT)).toBe(9223372036.854775807);
    });
  });

  describe('divideRoundHalfUp', () => {
    it.each([
      [5n, 10n, 1n],
      [4n, 10n, 0n],
      [15n, 10n, 2n],
      [14n, 10n, 1n],
      [1_500_000n, 1_000_000n, 2n],
      [1_499_999n, 1_000_000n, 1n],
      [0n, 7n, 0n],
    ])('%p / %p = %p', (n, d, q) => {
      expect(divideRoundHalfUp(n, d)).toBe(q);
    });

    it('rejects negative operands', () => {
      expect(() => divideRoundHalfUp(-1n, 2n)).toThrow(RangeError);
      expect(() => divideRoundHalfUp(1n, 0n)).toThrow(RangeError);
    });
  });

  describe('computeCostNano', () => {
    const prices = {
      inputPerMtokNano: parseDecimalToNano('2.50'),
      cachedInputPerMtokNano: parseDecimalToNano('1.25'),
      outputPerMtokNano: parseDecimalToNano('10.00'),
    };

    it('prices uncached input, cached input and output separately', () => {
      // (800 × 2.5e9 + 200 × 1.25e9 + 300 × 10e9) / 1e6 = 2000000 + 250000 + 3000000
      expect(computeCostNano({ inputTokens: 1000, inputCachedTokens: 200, outputTokens: 300 }, prices)).toBe(5_250_000n);
    });

    it('rounds half up, in integers', () => {
      const tiny = { inputPerMtokNano: 1n, cachedInputPerMtokNano: 0n, outputPerMtokNano: 0n };
      expect(computeCostNano({ inputTokens: 500_000, inputCachedTokens: 0, outputTokens: 0 }, tiny)).toBe(1n); // 0.5 → 1
      expect(computeCostNano({ inputTokens: 499_999, inputCachedTokens: 0, outputTokens: 0 }, tiny)).toBe(0n);
      expect(computeCostNano({ inputTokens: 1_500_000, inputCachedTokens: 0, outputTokens: 0 }, tiny)).toBe(2n); // 1.5 → 2
    });

    it('stays exact for values far beyond 2^53', () => {
      const big = { inputPerMtokNano: 999_999_999_999_999n, cachedInputPerMtokNano: 1n, outputPerMtokNano: 3n };
      const tokens = { inputTokens: Number.MAX_SAFE_INTEGER, inputCachedTokens: 1, outputTokens: Number.MAX_SAFE_INTEGER };
      const exact = (9007199254740990n * 999_999_999_999_999n + 1n + 9007199254740991n * 3n) * 2n + 1_000_000n;
      expect(computeCostNano(tokens, big)).toBe(exact / 2_000_000n);
    });

    it('refuses more cached than input tokens', () => {
      expect(() => computeCostNano({ inputTokens: 1, inputCachedTokens: 2, outputTokens: 0 }, prices)).toThrow(RangeError);
    });
  });
});

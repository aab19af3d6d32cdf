import { divRoundHalfUp, fromScaled, scaledToNumber, toScaled } from './decimal';

describe('decimal', () => {
  it('scales decimal strings and numbers exactly', () => {
    expect(toScaled('3281.35', 9)).toBe(3_281_350_000_000n);
    expect(toScaled(3281.35, 9)).toBe(3_281_350_000_000n);
    expect(toScaled('0.000000001', 9)).toBe(1n);
    expect(toScaled(1e-9, 9)).toBe(1n);
    expect(toScaled(1e21, 0)).toBe(1_000_000_000_000_000_000_000n);
    expect(toScaled('12', 9)).toBe(12_000_000_000n);
    expect(toScaled('-1.5', 9)).toBe(-1_500_000_000n);
  });

  it('refuses what is not a plain decimal with at most `scale` places', () => {
    for (const bad of ['1.0000000001', '1e5', 'abc', '', '1.', '.5', ' 1 2', '0x10']) expect(toScaled(bad, 9)).toBeNull();
    expect(toScaled(Number.NaN, 9)).toBeNull();
    expect(toScaled(Infinity, 9)).toBeNull();
  });

  it('formats scaled integers back without trailing zeros', () => {
    expect(fromScaled(3_281_350_000_000n, 9)).toBe('3281.35');
    expect(fromScaled(1n, 9)).toBe('0.000000001');
    expect(fromScaled(0n, 9)).toBe('0');
    expect(fromScaled(-1_500_000_000n, 9)).toBe('-1.5');
    expect(scaledToNumber(2_500_000_000n, 9)).toBe(2.5);
  });

  it('rounds half up', () => {
    expect(divRoundHalfUp(5n, 10n)).toBe(1n);
    expect(divRoundHalfUp(4n, 10n)).toBe(0n);
    expect(divRoundHalfUp(15n, 10n)).toBe(2n);
    expect(divRoundHalfUp(14n, 10n)).toBe(1n);
  });
});

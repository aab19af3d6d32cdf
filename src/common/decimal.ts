/**
 * Exact decimal ↔ scaled-integer conversion (no float arithmetic).
 * `toScaled("3281.35", 9)` is 3281350000000n; `fromScaled(3281350000000n, 9)` is "3281.35".
 */
export function toScaled(value: string | number, scale: number): bigint | null {
  let text = typeof value === 'number' ? numberToPlain(value) : value.trim();
  if (text === null) return null;
  const match = /^(-?)(\d+)(?:\.(\d+))?$/.exec(text);
  if (!match) return null;
  const [, sign, whole, fraction = ''] = match;
  if (fraction.length > scale) return null;
  text = whole + fraction.padEnd(scale, '0');
  const result = BigInt(text);
  return sign === '-' ? -result : result;
}

export function fromScaled(value: bigint, scale: number): string {
  const negative = value < 0n;
  const digits = (negative ? -value : value).toString().padStart(scale + 1, '0');
  const whole = digits.slice(0, digits.length - scale);
  const fraction = digits.slice(digits.length - scale).replace(/0+$/, '');
  return `${negative ? '-' : ''}${whole}${fraction ? '.' + fraction : ''}`;
}

/** A JSON number in plain decimal notation (its shortest round-trip form), or null if not finite. */
function numberToPlain(value: number): string | null {
  if (!Number.isFinite(value)) return null;
  const text = String(value);
  const exp = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(text);
  if (!exp) return text;
  const [, sign, lead, rest = '', power] = exp;
  const digits = lead + rest;
  const point = 1 + Number(power);
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return `${sign}${digits}${'0'.repeat(point - digits.length)}`;
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

/** `numerator / denominator` rounded half up, for non-negative integers. */
export function divRoundHalfUp(numerator: bigint, denominator: bigint): bigint {
  return (numerator * 2n + denominator) / (denominator * 2n);
}

/** A scaled integer as a JS number for display (`cost`, `limit`); exact sums stay in bigint. */
export function scaledToNumber(value: bigint, scale: number): number {
  return Number(fromScaled(value, scale));
}

/**
 * Money in integer nano-units (1e9 per major unit), as `bigint`. Never floats for sums: a float
 * (`cost`, `amount.value`) is made from the exact integer only at the API edge.
 */
export const NANO_DECIMALS = 9;
export const NANO_PER_UNIT = 1_000_000_000n;
/** The largest value a PostgreSQL `bigint` column holds. */
export const MAX_BIGINT = (1n << 63n) - 1n;

const DECIMAL = /^(\d+)(?:\.(\d+))?$/;

/**
 * Parses a non-negative decimal string ("2.50", "0.000000001", "10") into nano-units, exactly.
 * Throws a RangeError for anything else, including more than 9 decimals.
 */
export function parseDecimalToNano(text: string): bigint {
  const match = DECIMAL.exec(text);
  if (!match) throw new RangeError('must be a non-negative decimal number');
  const [, whole, fraction = ''] = match;
  if (fraction.length > NANO_DECIMALS) throw new RangeError(`must have at most ${NANO_DECIMALS} decimals`);
  return BigInt(whole) * NANO_PER_UNIT + BigInt(fraction.padEnd(NANO_DECIMALS, '0'));
}

/**
 * The shortest decimal string of a JSON number, without exponent notation (1e-7 → "0.0000001"),
 * so a number in a request body means exactly what its author most likely typed.
 */
export function numberToDecimalString(value: number): string {
  if (!Number.isFinite(value)) throw new RangeError('must be a finite number');
  const text = String(value);
  const match = /^(-?)(\d+)(?:\.(\d+))?e([+-]\d+)$/.exec(text);
  if (!match) return text;
  const [, sign, intPart, fracPart = '', exponentText] = match;
  const digits = intPart + fracPart;
  const point = intPart.length + Number(exponentText); // position of the decimal point in `digits`
  let result: string;
  if (point <= 0) result = `0.${'0'.repeat(-point)}${digits}`;
  else if (point >= digits.length) result = digits + '0'.repeat(point - digits.length);
  else result = `${digits.slice(0, point)}.${digits.slice(point)}`;
  return sign + result;
}

/** Nano-units as an exact decimal string in major units, without trailing zeros ("2.5", "10", "-0.000000001"). */
export function formatNano(nano: bigint): string {
  const negative = nano < 0n;
  const abs = negative ? -nano : nano;
  const whole = abs / NANO_PER_UNIT;
  const fraction = (abs % NANO_PER_UNIT).toString().padStart(NANO_DECIMALS, '0').replace(/0+$/, '');
  return `${negative ? '-' : ''}${whole}${fraction ? `.${fraction}` : ''}`;
}

/** Major units as a JSON number: the double nearest to the exact decimal (only for display). */
export function nanoToNumber(nano: bigint): number {
  return Number(formatNano(nano));
}

/** numerator / denominator rounded half up, for non-negative operands. */
export function divideRoundHalfUp(numerator: bigint, denominator: bigint): bigint {
  if (numerator < 0n || denominator <= 0n) throw new RangeError('divideRoundHalfUp takes non-negative operands');
  return (numerator * 2n + denominator) / (denominator * 2n);
}

/** Prices in nano-units per million tokens. */
export interface TokenPrices {
  inputPerMtokNano: bigint;
  cachedInputPerMtokNano: bigint;
  outputPerMtokNano: bigint;
}

export interface TokenCounts {
  inputTokens: number;
  inputCachedTokens: number;
  outputTokens: number;
}

/**
 * SPEC §3.1: round_half_up(((input − cached) × input_price + cached × cached_price + output ×
 * output_price) / 1,000,000), in integer arithmetic (input tokens include the cached ones).
 */
export function computeCostNano(tokens: TokenCounts, prices: TokenPrices): bigint {
  const input = BigInt(tokens.inputTokens);
  const cached = BigInt(tokens.inputCachedTokens);
  const output = BigInt(tokens.outputTokens);
  if (cached > input) throw new RangeError('cached input tokens exceed input tokens');
  const total =
    (input - cached) * prices.inputPerMtokNano + cached * prices.cachedInputPerMtokNano + output * prices.outputPerMtokNano;
  return divideRoundHalfUp(total, 1_000_000n);
}

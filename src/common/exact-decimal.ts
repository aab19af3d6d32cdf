/**
 * Exact decimals from client input. Every number a client sends that carries money or a ratio
 * (budget `limit` and `pct`, prices, `cost_nano`) goes through {@link readExactDecimal}: its
 * text (a JSON number's own lexeme, `1e3`, `1.5E2`, `0.1`, or a plain decimal string) is read as
 * the exact decimal it denotes, never through a double, and then checked against the field's
 * rules. The result is a canonical plain decimal string ("1000", "0.1", "3281.35").
 */

/** A decimal as coefficient × 10^exponent; the coefficient has no leading or trailing zeros ("" for zero). */
interface Decimal {
  negative: boolean;
  coefficient: string;
  exponent: number;
}

/** The rules of one field. */
export interface DecimalRules {
  /** Most digits after the decimal point (0: integers only). */
  maxDecimals: number;
  /** Largest value, as a plain non-negative decimal string. */
  max: string;
  /** `positive`: greater than 0; `nonNegative`: 0 or more. */
  min: 'positive' | 'nonNegative';
}

/** Why a value is refused (the message names the rule, the caller names the field). */
export class DecimalRefusal {
  constructor(readonly message: string) {}
}

const JSON_NUMBER = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/;
/** Longer coefficients are refused before any arithmetic (a 4 MB digit string must cost nothing). */
const MAX_SIGNIFICANT_DIGITS = 40;
/** Exponents beyond this are out of every range we accept (the value is enormous or has too many decimals). */
const MAX_EXPONENT = 1_000_000;

/** Reads the text of a JSON number (any form JSON allows, exponents included); null if it is not one. */
export function parseDecimalText(text: string): Decimal | null {
  const match = JSON_NUMBER.exec(text);
  if (!match) return null;
  const [, sign, whole, fraction = '', exponentText = '0'] = match;
  const exponentValue = Number(exponentText);
  if (!Number.isSafeInteger(exponentValue) || Math.abs(exponentValue) > MAX_EXPONENT) {
    // Out of every range: keep the direction (huge or tiny) so the message can say which.
    return { negative: sign === '-', coefficient: /[1-9]/.test(whole + fraction) ? '1' : '', exponent: exponentValue > 0 ? MAX_EXPONENT + 1 : -(MAX_EXPONENT + 1) };
  }
  let digits = whole + fraction;
  let exponent = exponentValue - fraction.length;
  const first = digits.search(/[1-9]/);
  if (first < 0) return { negative: sign === '-', coefficient: '', exponent: 0 };
  digits = digits.slice(first);
  const trailing = digits.length - digits.replace(/0+$/, '').length;
  digits = digits.slice(0, digits.length - trailing);
  exponent += trailing;
  return { negative: sign === '-', coefficient: digits, exponent };
}

/** Digits after the decimal point the value needs. */
function decimalsOf(d: Decimal): number {
  return d.coefficient === '' ? 0 : Math.max(0, -d.exponent);
}

/** The value as a plain decimal string without exponent ("1000", "0.00015"); only for bounded values. */
function toPlain(d: Decimal): string {
  if (d.coefficient === '') return '0';
  let text: string;
  if (d.exponent >= 0) text = d.coefficient + '0'.repeat(d.exponent);
  else {
    const point = d.coefficient.length + d.exponent;
    text = point > 0 ? `${d.coefficient.slice(0, point)}.${d.coefficient.slice(point)}` : `0.${'0'.repeat(-point)}${d.coefficient}`;
  }
  return d.negative ? `-${text}` : text;
}

/** a ≤ b for non-negative plain decimal strings (compared exactly, as scaled integers). */
function notGreater(a: Decimal, max: Decimal): boolean {
  if (a.coefficient === '') return true;
  if (max.coefficient === '') return false;
  const magnitude = (d: Decimal) => d.coefficient.length + d.exponent; // digits before the point
  if (magnitude(a) !== magnitude(max)) return magnitude(a) < magnitude(max);
  const scale = Math.max(decimalsOf(a), decimalsOf(max));
  const scaled = (d: Decimal) => BigInt(d.coefficient) * 10n ** BigInt(d.exponent + scale);
  return scaled(a) <= scaled(max);
}

/**
 * Checks a decimal against a field's rules: the canonical plain decimal string, or a refusal
 * naming the broken rule.
 */
export function checkDecimal(d: Decimal, rules: DecimalRules): string | DecimalRefusal {
  const isZero = d.coefficient === '';
  if (d.negative && !isZero) return new DecimalRefusal(rules.min === 'positive' ? 'must be greater than 0' : 'must not be negative');
  if (isZero && rules.min === 'positive') return new DecimalRefusal('must be greater than 0');
  if (decimalsOf(d) > rules.maxDecimals) {
    return new DecimalRefusal(rules.maxDecimals === 0 ? 'must be an integer' : `must have at most ${rules.maxDecimals} decimals`);
  }
  const max = parseDecimalText(rules.max)!;
  if (d.coefficient.length > MAX_SIGNIFICANT_DIGITS || !notGreater(d, max)) return new DecimalRefusal(`must not be greater than ${rules.max}`);
  return toPlain({ ...d, negative: false });
}

/**
 * What a client sent for an exact field, as its canonical decimal string or a refusal. `source`
 * is the JSON number's own text when the body parser kept it (see exact-json.ts); otherwise a
 * number is read from its shortest round-trip form, which is exact for the numbers that parser
 * leaves to JSON.parse (at most 15 digits, no exponent).
 */
export function readExactDecimal(value: unknown, source: string | undefined, rules: DecimalRules, options: { strings: boolean }): string | DecimalRefusal {
  const expected = options.strings ? 'must be a decimal number (a JSON number or a decimal string)' : 'must be a number';
  let decimal: Decimal | null = null;
  if (typeof value === 'number') {
    // 1e400 arrives as Infinity: its text says how large it was.
    const text = source ?? (Number.isFinite(value) ? shortestText(value) : undefined);
    if (text === undefined) return new DecimalRefusal(expected);
    decimal = parseDecimalText(text);
  } else if (typeof value === 'string' && options.strings) {
    // Strings are plain decimals ("2.50"), as the price book has always documented them.
    if (/^-?\d{1,64}(\.\d{1,64})?$/.test(value)) decimal = parseDecimalText(value);
    else return new DecimalRefusal(expected);
  }
  if (!decimal) return new DecimalRefusal(expected);
  return checkDecimal(decimal, rules);
}

/** A double's shortest round-trip text, in JSON number syntax (String() may write `1e+21`). */
function shortestText(value: number): string {
  return String(value).replace('e+', 'e');
}

/** The integer a JSON number's text denotes exactly (`1e3` → 1000n), or null if it is not one (or is absurdly long). */
export function integerOfText(text: string): bigint | null {
  const d = parseDecimalText(text);
  if (!d || decimalsOf(d) > 0 || d.coefficient.length + d.exponent > MAX_SIGNIFICANT_DIGITS) return null;
  if (d.coefficient === '') return 0n;
  const magnitude = BigInt(d.coefficient) * 10n ** BigInt(d.exponent);
  return d.negative ? -magnitude : magnitude;
}

import { randomBytes } from 'node:crypto';

/**
 * A JSON number that the API writes exactly as its decimal text. A budget `limit` may have 24
 * significant digits (10^15 with 9 decimals), more than a double holds, and the seed types it as a
 * number: the HTTP reply serializer ({@link stringifyExact}) writes the text itself. Anywhere else
 * (`JSON.stringify`, e.g. a webhook body) it stays what it always was: the nearest double.
 */
export class JsonDecimal {
  constructor(readonly text: string) {
    if (!/^-?\d+(\.\d+)?$/.test(text)) throw new RangeError(`not a plain decimal: ${text}`);
  }

  toJSON(): number | string {
    if (!writing) return Number(this.text);
    used = true;
    return `${MARK}${this.text}`;
  }

  valueOf(): number {
    return Number(this.text);
  }
}

/** Marks a JsonDecimal inside the serialised text; the nonce keeps client strings from forging one. */
const MARK = `\u0001${randomBytes(9).toString('base64url')}:`;
const MARKED = new RegExp(`"${JSON.stringify(MARK).slice(1, -1).replace(/\\/g, '\\\\')}(-?\\d+(?:\\.\\d+)?)"`, 'g');
let writing = false;
let used = false;

/** JSON.stringify, with every JsonDecimal written as its exact decimal text. */
export function stringifyExact(value: unknown): string {
  writing = true;
  used = false;
  try {
    const json = JSON.stringify(value);
    return used ? json.replace(MARKED, '$1') : json;
  } finally {
    writing = false;
  }
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * An integer for a JSON number field: a plain number while a double holds it exactly, past 2^53 a
 * JsonDecimal, which the reply serializer writes with every digit (a sum of tokens can pass 2^53;
 * as a double it would be rounded silently).
 */
export function exactInteger(value: bigint): number {
  return value <= MAX_SAFE && value >= -MAX_SAFE ? Number(value) : (new JsonDecimal(value.toString()) as unknown as number);
}

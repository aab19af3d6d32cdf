/**
 * Request bodies read without losing a number. JSON.parse turns `123456789012345.123456789` or
 * `1.5e-10` into the nearest double, and Node 20's reviver cannot see the source text. So the
 * body parser scans the text once (it already does, for the depth limit): when every number in it
 * is one a double holds exactly and prints back unchanged (no exponent, at most 15 digits),
 * JSON.parse is used as before; otherwise a small parser also keeps, for each such number, its
 * text, found later by {@link numberSource} with the object and key it sits in. Fields that need
 * exactness (see `ExactDecimalField`, `IntField` in validation.ts) read it from there; every
 * other field sees the same JS values as before.
 */

/** Texts of the numbers a double cannot hold exactly, per object (or array) and key. */
const sources = new WeakMap<object, Map<string, string>>();

/** The text the client sent for the number at `container[key]`, when it was not plain. */
export function numberSource(container: unknown, key: string | number): string | undefined {
  if (container === null || typeof container !== 'object') return undefined;
  return sources.get(container)?.get(String(key));
}

/** Keys dropped from every body (prototype pollution). */
export const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor']);

/** True when a number's text is one a double holds exactly and prints back unchanged. */
export function isPlainNumberText(text: string): boolean {
  let digits = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) digits++;
    else if (c === 101 || c === 69) return false; // e, E
  }
  return digits <= 15;
}

/**
 * Parses text that JSON.parse has already accepted, keeping the text of every number that is not
 * plain. Prototype keys are dropped, as the reviver of the fast path does.
 */
export function parseKeepingNumbers(text: string): unknown {
  return new LosslessParser(text).parse();
}

class LosslessParser {
  private i = 0;
  /** The text of the number just read, if it was not plain. */
  private lastSource: string | undefined;

  constructor(private readonly text: string) {}

  parse(): unknown {
    return this.value();
  }

  private value(): unknown {
    this.skipSpace();
    this.lastSource = undefined;
    const c = this.text.charCodeAt(this.i);
    switch (c) {
      case 123: // {
        return this.object();
      case 91: // [
        return this.array();
      case 34: // "
        return this.string();
      case 116: // true
        this.i += 4;
        return true;
      case 102: // false
        this.i += 5;
        return false;
      case 110: // null
        this.i += 4;
        return null;
      default:
        return this.number();
    }
  }

  private object(): Record<string, unknown> {
    const result: Record<string, unknown> = {};
    this.i++; // {
    this.skipSpace();
    if (this.text.charCodeAt(this.i) === 125) {
      this.i++;
      return result;
    }
    for (;;) {
      this.skipSpace();
      const key = this.string();
      this.skipSpace();
      this.i++; // :
      const value = this.value();
      if (!FORBIDDEN_KEYS.has(key)) {
        result[key] = value;
        this.remember(result, key);
      }
      this.skipSpace();
      if (this.text.charCodeAt(this.i++) === 125) return result; // } (else a comma)
    }
  }

  private array(): unknown[] {
    const result: unknown[] = [];
    this.i++; // [
    this.skipSpace();
    if (this.text.charCodeAt(this.i) === 93) {
      this.i++;
      return result;
    }
    for (;;) {
      result.push(this.value());
      this.remember(result, String(result.length - 1));
      this.skipSpace();
      if (this.text.charCodeAt(this.i++) === 93) return result; // ] (else a comma)
    }
  }

  /** Records (or, for a repeated key, forgets) the text of the value just stored at `key`. */
  private remember(container: object, key: string): void {
    let map = sources.get(container);
    if (this.lastSource === undefined) {
      map?.delete(key);
      return;
    }
    if (!map) sources.set(container, (map = new Map()));
    map.set(key, this.lastSource);
    this.lastSource = undefined;
  }

  private string(): string {
    const start = this.i;
    this.i++; // opening quote
    for (;;) {
      const c = this.text.charCodeAt(this.i++);
      if (c === 92) {
        // A backslash: the next character is part of an escape.
        this.i++;
      } else if (c === 34) break;
    }
    // JSON.parse copies: a slice of the text would keep the whole body alive as long as any
    // value read from it (the ingest keeps a batch's ids through its round trips).
    return JSON.parse(this.text.slice(start, this.i)) as string;
  }

  private number(): number {
    const start = this.i;
    for (;;) {
      const c = this.text.charCodeAt(this.i);
      // digits, '-', '+', '.', 'e', 'E'
      if ((c >= 48 && c <= 57) || c === 45 || c === 43 || c === 46 || c === 101 || c === 69) this.i++;
      else break;
    }
    const source = this.text.slice(start, this.i);
    if (!isPlainNumberText(source)) this.lastSource = source;
    return Number(source);
  }

  private skipSpace(): void {
    for (;;) {
      const c = this.text.charCodeAt(this.i);
      if (c === 32 || c === 9 || c === 10 || c === 13) this.i++;
      else return;
    }
  }
}

import { randomBytes } from 'node:crypto';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** Unbiased random base62 string (rejection sampling over random bytes). */
export function randomBase62(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 248) out += BASE62[byte % 62]; // 248 = 4 * 62: keeps every character equally likely
      if (out.length === length) break;
    }
  }
  return out;
}

/** Public ids: `org_…`, `key_…`, `bud_…`: a prefix and 24 base62 characters. */
export function newId(prefix: string): string {
  return `${prefix}_${randomBase62(24)}`;
}

/** What ids we issue look like (`org_…`, `key_…`, `bud_…`): validated wherever an id is accepted. */
export const ID_PATTERN = /^[A-Za-z0-9_-]+$/;

import { createHash } from 'node:crypto';
import { AppException, ErrorCode } from './errors';

/**
 * Opaque pagination cursors: base64url of a small JSON object. A cursor carries a fingerprint of
 * the query it belongs to, so replaying it with other filters is a 400 rather than wrong data.
 */
export function encodeCursor(payload: Record<string, unknown>): string {
  return Buffer.from(JSON.stringify(payload), 'utf8').toString('base64url');
}

/** How every cursor this service issues begins: base64url of `{"`. */
const ISSUED_PREFIX = 'eyJ';

/**
 * Decodes a cursor and checks its shape. A value that is not a cursor this service issues at all
 * (the MKA1 page's own example sends `page: "cursor_abc123"`, and its examples must work as they
 * are) is no position: the first page, as without one. One of ours that is unreadable (cut short,
 * altered) or belongs to another query is a 400 `invalid_cursor`.
 */
export function decodeCursor<T>(cursor: string, isValid: (value: unknown) => value is T, param = 'page'): T | undefined {
  if (!cursor.startsWith(ISSUED_PREFIX)) return undefined;
  let value: unknown;
  try {
    if (!/^[A-Za-z0-9_-]{1,1000}$/.test(cursor)) throw new Error('not base64url');
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalidCursor(param);
  }
  if (!isValid(value)) throw invalidCursor(param);
  return value;
}

export function invalidCursor(param = 'page'): AppException {
  return AppException.badRequest(
    ErrorCode.InvalidCursor,
    'The page cursor is invalid or belongs to another query: send next_page from the previous response unchanged, with the same parameters',
    param,
  );
}

/** A short, stable hash of a JSON-serialisable value (object keys sorted). */
export function fingerprint(value: unknown): string {
  return createHash('sha256').update(stableJson(value)).digest('base64url').slice(0, 16);
}

function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

import { decodeCursor, encodeCursor, fingerprint } from './cursor';
import { AppException } from './errors';

interface Payload {
  n: number;
  f: string;
}
const isPayload = (v: unknown): v is Payload =>
  typeof v === 'object' && v !== null && typeof (v as Payload).n === 'number' && typeof (v as Payload).f === 'string';

describe('cursor', () => {
  it('round-trips a payload through an opaque base64url string', () => {
    const cursor = encodeCursor({ n: 1704067200, f: 'abc' });
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeCursor(cursor, isPayload)).toEqual({ n: 1704067200, f: 'abc' });
  });

  it.each([
    ['cursor_abc123 (the MKA1 page\'s example)', 'cursor_abc123'],
    ['empty', ''],
    ['base64url, but not of JSON', Buffer.from('nope').toString('base64url')],
  ])('reads a value that is no cursor of ours, %s, as no position (the first page)', (_what, cursor) => {
    expect(decodeCursor(cursor, isPayload)).toBeUndefined();
  });

  it.each([
    ['not base64url', 'eyJ+b/c='],
    ['cut short', encodeCursor({ n: 1704067200, f: 'abc' }).slice(0, -3)],
    ['the wrong shape', encodeCursor({ n: 'x', f: 'abc' })],
    ['too long', 'eyJ' + 'a'.repeat(1000)],
  ])('rejects a cursor that is %s with a 400 invalid_cursor', (_what, cursor) => {
    let error: unknown;
    try {
      decodeCursor(cursor, isPayload);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(AppException);
    expect((error as AppException).status).toBe(400);
    expect((error as AppException).body().error).toMatchObject({ code: 'invalid_cursor', param: 'page' });
  });

  it('fingerprints values independently of key order, and tells different values apart', () => {
    expect(fingerprint({ a: 1, b: ['x', 'y'] })).toBe(fingerprint({ b: ['x', 'y'], a: 1 }));
    expect(fingerprint({ a: 1, b: undefined })).toBe(fingerprint({ a: 1 }));
    expect(fingerprint({ a: 1 })).not.toBe(fingerprint({ a: 2 }));
    expect(fingerprint({ a: ['x', 'y'] })).not.toBe(fingerprint({ a: ['y', 'x'] }));
    expect(fingerprint({ a: null })).not.toBe(fingerprint({ a: 'null' }));
  });
});

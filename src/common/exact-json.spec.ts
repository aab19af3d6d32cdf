import { isPlainNumberText, numberSource, parseKeepingNumbers } from './exact-json';
import { parseJsonObject } from './http-guards';
import { JsonDecimal, stringifyExact } from './json-decimal';

describe('parseJsonObject keeps the text of numbers a double cannot hold', () => {
  it('leaves plain bodies to JSON.parse: same values, no kept text', () => {
    const body = parseJsonObject('{"limit": 3281.35, "thresholds": [{"pct": 80}], "n": -12}');
    expect(body).toEqual({ limit: 3281.35, thresholds: [{ pct: 80 }], n: -12 });
    expect(numberSource(body, 'limit')).toBeUndefined();
  });

  it('keeps exponents and long digit runs, per object and key, nested too', () => {
    const body = parseJsonObject('{"limit":123456789012345.123456789,"thresholds":[{"pct":1.5e-10,"action":"block"},{"pct":80}],"x":"1e5"}') as any;
    expect(body.limit).toBe(123456789012345.12);
    expect(numberSource(body, 'limit')).toBe('123456789012345.123456789');
    expect(numberSource(body.thresholds[0], 'pct')).toBe('1.5e-10');
    expect(numberSource(body.thresholds[1], 'pct')).toBeUndefined();
    expect(numberSource(body, 'x')).toBeUndefined(); // a string, not a number
    expect(body).toEqual({ limit: 123456789012345.12, thresholds: [{ pct: 1.5e-10, action: 'block' }, { pct: 80 }], x: '1e5' });
  });

  it('parses exactly what JSON.parse does, strings with escapes and numbers inside strings included', () => {
    const text = '{"a":"q\\"1e5\\\\","b":[true,false,null,1E+2,-0.5e-3,{"c":{}}, []],"d":"\\u00e9","e":12345678901234567890}';
    expect(parseKeepingNumbers(text)).toEqual(JSON.parse(text));
    expect(numberSource((parseKeepingNumbers(text) as any).b, 3)).toBe('1E+2');
  });

  it('a repeated key keeps the last value and only its text', () => {
    const body = parseJsonObject('{"limit":1e3,"limit":5}');
    expect(body.limit).toBe(5);
    expect(numberSource(body, 'limit')).toBeUndefined();
  });

  it('drops prototype keys on both paths', () => {
    for (const text of ['{"__proto__":{"x":1},"constructor":2,"a":1}', '{"__proto__":{"x":1e3},"constructor":2e0,"a":1e1}']) {
      const body = parseJsonObject(text);
      expect(Object.keys(body)).toEqual(['a']);
      expect(({} as any).x).toBeUndefined();
    }
  });

  it('still refuses invalid JSON, non-objects and deep nesting', () => {
    for (const text of ['{"a": 1e}', '{"a": 01}', '[1e5]', '{"a": NaN}', `{"a":${'['.repeat(20)}${']'.repeat(20)}}`]) {
      expect(() => parseJsonObject(text)).toThrow();
    }
  });

  it('tells plain number texts apart', () => {
    expect(isPlainNumberText('-123456789012345')).toBe(true);
    expect(isPlainNumberText('0.00000000015')).toBe(true);
    expect(isPlainNumberText('1234567890123456')).toBe(false);
    expect(isPlainNumberText('1e3')).toBe(false);
  });

  it('every 15-digit plain number round-trips through a double (why the fast path is exact)', () => {
    let seed = 7;
    const next = () => (seed = (seed * 48271) % 2147483647);
    for (let i = 0; i < 20000; i++) {
      const digits = String(next()).padStart(10, '0') + String(next()).slice(0, 5);
      const point = next() % 16;
      const text = `${digits.slice(0, point) || '0'}.${digits.slice(point) || '0'}`;
      const canonical = text.replace(/^0+(?=\d)/, '').replace(/\.?0+$/, '');
      expect(String(Number(text))).toBe(Number(canonical).toString());
      expect(Number(text)).toBe(Number(canonical));
    }
  });
});

describe('stringifyExact', () => {
  it('writes a JsonDecimal as its exact text; JSON.stringify writes the nearest double', () => {
    const value = { limit: new JsonDecimal('123456789012345.123456789'), name: 'x' };
    expect(stringifyExact(value)).toBe('{"limit":123456789012345.123456789,"name":"x"}');
    expect(JSON.stringify(value)).toBe('{"limit":123456789012345.12,"name":"x"}');
  });

  it('a client string cannot forge an exact number', () => {
    expect(stringifyExact({ a: '\u0001abc:12', b: new JsonDecimal('1') })).toBe('{"a":"\\u0001abc:12","b":1}');
  });
});

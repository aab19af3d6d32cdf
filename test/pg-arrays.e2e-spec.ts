import { Client } from 'pg';
import { isoSecondsFormatter, plainArrayLiteral, textArrayLiteral } from '../src/database/pg-arrays';

/** The array literals of the ingest's unnest parameters, read back by real PostgreSQL. */
describe('PostgreSQL array literals (src/database/pg-arrays.ts)', () => {
  let client: Client;
  beforeAll(async () => {
    client = new Client({ connectionString: process.env.TEST_PG_SERVER_URL });
    await client.connect();
  });
  afterAll(async () => {
    await client.end();
  });

  it('reads every text back as itself: quotes, backslashes, braces, commas, spaces, NULL as a word, empty, non-ASCII; null as NULL', async () => {
    const values = ['plain', 'with "quotes"', 'back\\slash', '\\"', '{braces}', 'a,b', ' spaced ', 'NULL', 'null', '', 'ünïcødé ✓', null, 'tab\there', 'line\nbreak'];
    const literal = textArrayLiteral(values, (v) => v);
    const { rows } = await client.query('SELECT v FROM unnest($1::varchar[]) WITH ORDINALITY AS u(v, n) ORDER BY n', [literal]);
    expect(rows.map((r: { v: string | null }) => r.v)).toEqual(values);
    expect(textArrayLiteral([], (v: string) => v)).toBe('{}');
  });

  it('writes bigints beyond 2^53, safe integers (-0 as 0) and booleans exactly', async () => {
    const values = [0n, 1n, -1n, 9_223_372_036_854_775_807n, -9_223_372_036_854_775_808n, 9_007_199_254_740_993n];
    const { rows } = await client.query('SELECT v::text FROM unnest($1::bigint[]) WITH ORDINALITY AS u(v, n) ORDER BY n', [plainArrayLiteral(values, (v) => v)]);
    expect(rows.map((r: { v: string }) => BigInt(r.v))).toEqual(values);
    const numbers = [0, -0, 1, 25, Number.MAX_SAFE_INTEGER];
    const counts = await client.query('SELECT v::text FROM unnest($1::bigint[]) WITH ORDINALITY AS u(v, n) ORDER BY n', [plainArrayLiteral(numbers, (v) => v)]);
    expect(counts.rows.map((r: { v: string }) => r.v)).toEqual(['0', '0', '1', '25', '9007199254740991']);
    const flags = await client.query('SELECT v FROM unnest($1::boolean[]) WITH ORDINALITY AS u(v, n) ORDER BY n', [plainArrayLiteral([true, false, true], (v) => v)]);
    expect(flags.rows.map((r: { v: boolean }) => r.v)).toEqual([true, false, true]);
  });

  it('formats Unix seconds as timestamptz in UTC, minute after minute and back again', async () => {
    const iso = isoSecondsFormatter();
    const seconds = [1796083200, 1796083205, 1796083259, 1796083260, 1796083199, 0, 951782400 + 59, 4102444799];
    const { rows } = await client.query(
      'SELECT extract(epoch FROM v)::bigint::text AS s FROM unnest($1::timestamptz[]) WITH ORDINALITY AS u(v, n) ORDER BY n',
      [textArrayLiteral(seconds, iso)],
    );
    expect(rows.map((r: { s: string }) => Number(r.s))).toEqual(seconds);
    expect(iso(1796083205)).toBe(new Date(1796083205 * 1000).toISOString().replace('.000', ''));
  });
});

import { sample } from './helpers/metrics';
import { createSystemKey, HttpResult, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { DAY, HOUR, ingestOk, T0 } from './helpers/usage';
import { loadRawRecords, RawRecord, referenceCompletions, referenceCosts, sortResults } from './helpers/usage-reference';
import { prng, randomRecords } from './helpers/usage-random';
import { nanoToNumber } from '../src/common/money';
import { ReportCursor } from '../src/usage/report-cursor';
import { waitFor } from './helpers/wait-for';

/**
 * Reports read their rows through a server-side cursor, REPORT_FETCH_ROWS at a time, so a large
 * report is never held whole (BENCHMARKS.md, Memory). With a fetch size of 3, every page crosses
 * many fetch boundaries inside and between buckets: the answers must still equal a plain
 * aggregation of the raw records, the rows must have come in many fetches, and no connection may
 * be left in a transaction afterwards.
 */
describe('usage reports read through a cursor, a few rows at a time', () => {
  let t: TestApp;
  let raw: RawRecord[];
  let acmeAdmin: string;
  let acmeOrg: string;
  const FETCH = 3;

  beforeAll(async () => {
    t = await startTestApp({ REPORT_FETCH_ROWS: String(FETCH) });
    const acme = await seedOrg(t, 'Acme', 'team-a');
    const other = await acme.make('member', { team_id: 'team-b' });
    acmeAdmin = acme.orgAdmin.key;
    acmeOrg = acme.org.id;
    const ingestKey = await createSystemKey(t, 'ingest');
    const records = randomRecords(prng(13), [acme.member.id, acme.orgAdmin.id, other.id], 1500, T0, 2, 'cursor');
    for (let i = 0; i < records.length; i += 500) await ingestOk(t, ingestKey.key, records.slice(i, i + 500));
    raw = await loadRawRecords(t);
    expect(raw).toHaveLength(1500);
  });
  afterAll(() => t.close());

  const metrics = async () => {
    const text = (await t.get('/metrics', { key: null })).text;
    return { fetches: sample(text, 'tally_report_fetches_total') ?? 0, rows: sample(text, 'tally_report_rows_total') ?? 0 };
  };

  /** Connections of this test's database left inside a report's transaction (a cursor not closed; the worker's own transactions aside). */
  const openTransactions = async () =>
    Number(
      (
        await t.dataSource.query(
          `SELECT count(*) AS n FROM pg_stat_activity
           WHERE datname = current_database() AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'
             AND (query LIKE 'DECLARE report %' OR query LIKE 'FETCH % FROM report')`,
        )
      )[0].n,
    );

  /**
   * The last fetch ends its transaction without the reader waiting for it: wait briefly for that
   * (2 s, far below the 30 s after which a stalled cursor is closed anyway).
   */
  const noOpenTransactions = () => waitFor(async () => (await openTransactions()) === 0, 'every report transaction to end', 2000);

  async function allPages(path: string, query: Record<string, string | number>): Promise<Array<{ start_time: number; results: unknown[] }>> {
    const buckets = [];
    let page: string | null = null;
    do {
      const qs = new URLSearchParams(Object.entries({ ...query, ...(page ? { page } : {}) }).map(([k, v]): [string, string] => [k, String(v)]));
      const res: HttpResult = await t.get(`${path}?${qs}`, { key: acmeAdmin });
      if (res.status !== 200) throw new Error(`${res.status} ${res.text}`);
      buckets.push(...res.body.data);
      page = res.body.next_page;
    } while (page);
    return buckets;
  }

  it.each([
    ['1h', 'api_key_id,user_id', 7],
    ['1h', 'model,user_id,project_id,batch,service_tier', 48],
    ['1m', 'model', 500],
    ['1d', 'api_key_id,user_id,model', 1],
  ])('%s buckets by %s, %i buckets a page, equal the raw records', async (width, groupBy, limit) => {
    const start = T0 - HOUR + 17;
    const end = width === '1m' ? T0 + 9 * HOUR : T0 + 2 * DAY + HOUR;
    const before = await metrics();
    const got = await allPages('/api/v1/llm/usage/completions', { start_time: start, end_time: end, bucket_width: width, group_by: groupBy, limit });
    const after = await metrics();
    const expected = referenceCompletions(raw, { start, end, width, groupBy: groupBy.split(','), filter: { org_id: acmeOrg } });
    expect(got.map((b) => ({ ...b, results: sortResults(b.results as Array<Record<string, unknown>>) }))).toEqual(expected);
    const results = expected.reduce((n, b) => n + b.results.length, 0);
    expect(results).toBeGreaterThan(10 * FETCH);
    // Every row of every page came through the cursor, at most FETCH per round trip.
    expect(after.rows - before.rows).toBeGreaterThanOrEqual(results);
    expect(after.fetches - before.fetches).toBeGreaterThanOrEqual(Math.ceil((after.rows - before.rows) / FETCH));
    await noOpenTransactions();
  });

  it("OpenAI's costs by line item and the paged cost report equal the raw records", async () => {
    const start = T0 + 5;
    const end = T0 + 2 * DAY - 7;
    const daily = await allPages('/v1/organization/costs', { start_time: start, end_time: end, group_by: 'line_item', limit: 1 });
    const reference = referenceBuckets(start, end);
    expect(daily.map((b) => sortByLine(b.results as Array<Record<string, unknown>>))).toEqual(reference);

    const lines: Array<Record<string, unknown>> = [];
    let page: string | null = null;
    do {
      const res: HttpResult = await t.get(
        `/api/v1/llm/usage/costs?start_time=${start}&end_time=${end}&group_by=api_key_id,external_user_id,model&limit=5${page ? `&page=${page}` : ''}`,
        { key: acmeAdmin },
      );
      expect(res.status).toBe(200);
      lines.push(...res.body.data.map(({ cost: _cost, ...line }: Record<string, unknown>) => line));
      page = res.body.next_page;
    } while (page);
    const expected = referenceCosts(raw, { start, end, groupBy: ['api_key_id', 'external_user_id', 'model'], filter: { org_id: acmeOrg } });
    const order = (rows: Array<Record<string, unknown>>) => [...rows].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
    expect(order(lines)).toEqual(order(expected.data));
    await noOpenTransactions();

    function referenceBuckets(from: number, to: number) {
      const out = [];
      for (let day = Math.floor(from / DAY) * DAY; day < to; day += DAY) {
        const s = Math.max(day, from);
        const e = Math.min(day + DAY, to);
        const byModel = new Map<string, bigint>();
        for (const r of raw) {
          if (r.org_id !== acmeOrg || r.created_at < s || r.created_at >= e) continue;
          byModel.set(r.model, (byModel.get(r.model) ?? 0n) + r.cost_nano);
        }
        out.push([...byModel].map(([model, nano]) => ({ line_item: model, value: nanoToNumber(nano) })).sort((a, b) => (a.line_item < b.line_item ? -1 : 1)));
      }
      return out;
    }
    function sortByLine(results: Array<Record<string, unknown>>) {
      return results
        .map((r) => ({ line_item: r.line_item as string, value: (r.amount as { value: number }).value }))
        .sort((a, b) => (a.line_item < b.line_item ? -1 : 1));
    }
  });

  it('gives the connection back when the reader closes early or stops asking', async () => {
    const sql = `SELECT g FROM generate_series(1, 100) g ORDER BY g`;
    const early = await ReportCursor.open(t.dataSource, sql, [], { timeoutMs: 30_000, fetchRows: 2 });
    const seen: unknown[] = [];
    for await (const batch of early) {
      seen.push(...batch.map((row) => row.g));
      if (seen.length >= 3) break; // crosses one fetch boundary, then stops
    }
    expect(seen).toEqual([1, 2, 3, 4]);
    expect(await openTransactions()).toBe(0);

    // Read to the end: every row once, in order, a fetch's rows at a time; the transaction ends by itself.
    const whole = await ReportCursor.open(t.dataSource, sql, [], { timeoutMs: 30_000, fetchRows: 7 });
    const batches: unknown[][] = [];
    for await (const batch of whole) batches.push(batch.map((row) => row.g));
    expect(batches.flat()).toEqual(Array.from({ length: 100 }, (_v, i) => i + 1));
    expect(batches.map((b) => b.length)).toEqual([...Array(14).fill(7), 2]);
    await noOpenTransactions();

    const unread = await ReportCursor.open(t.dataSource, sql, [], { timeoutMs: 30_000, fetchRows: 2 });
    expect(await openTransactions()).toBe(1);
    await unread.close();
    expect(await openTransactions()).toBe(0);

    // A reader that stops asking: the cursor is closed after timeoutMs, and its next read fails.
    const stalled = await ReportCursor.open(t.dataSource, sql, [], { timeoutMs: 200, fetchRows: 2 });
    const iterator = stalled[Symbol.asyncIterator]();
    expect((await iterator.next()).value).toEqual([{ g: 1 }, { g: 2 }]);
    await waitFor(async () => (await openTransactions()) === 0, 'the stalled cursor to be closed');
    await expect(iterator.next()).rejects.toThrow(/asked for nothing for 200 ms/);
  });
});

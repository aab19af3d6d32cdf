import { rawDimensionSql, ROLLUPS } from '../src/usage/rollups';
import { GRANULARITY_SECONDS } from '../src/usage/time-buckets';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { ingest, T0, tableRows } from './helpers/usage';
import { loadRawRecords, referenceCosts } from './helpers/usage-reference';
import { prng, randomRecords } from './helpers/usage-random';

const CLIENTS = 8;

/** Idempotency under concurrent retries: every record sent at least three times, by different clients at once. */
describe('concurrent overlapping ingest', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t.close());

  it('stores each record once, and rollups and costs equal the unique records exactly', async () => {
    const acme = await seedOrg(t, 'Acme', 'team-a');
    const globex = await seedOrg(t, 'Globex');
    const ingestKeys = await Promise.all([createSystemKey(t, 'ingest'), createSystemKey(t, 'ingest')]);
    await t.put('/api/v1/llm/prices/model-b', { input_per_mtok: '0.15', cached_input_per_mtok: '0.075', output_per_mtok: '0.6', effective_from: T0 });
    const rand = prng(8);
    // Few distinct dimension values over one day: many batches hit the same rollup rows.
    const unique = randomRecords(rand, [acme.member.id, acme.orgAdmin.id, globex.member.id], 1200, T0, 1, 'conc');

    // Each record goes to 3 distinct clients; each client sends its share shuffled, in batches of varying size.
    const shares: Array<typeof unique> = Array.from({ length: CLIENTS }, () => []);
    for (const r of unique) {
      const clients = new Set<number>();
      while (clients.size < 3) clients.add(Math.floor(rand() * CLIENTS));
      for (const c of clients) shares[c].push(r);
    }
    for (const share of shares) share.sort(() => rand() - 0.5);
    let sent = 0;
    let failed = false;
    const results = await Promise.all(
      shares.map(async (share, client) => {
        const counts = { accepted: 0, duplicates: 0 };
        for (let i = 0; i < share.length && !failed; ) {
          const size = 50 + Math.floor(rand() * 250);
          const batch = share.slice(i, i + size);
          i += size;
          sent += batch.length;
          const res = await ingest(t, ingestKeys[client % 2].key, batch);
          if (res.status !== 200) {
            failed = true; // the other clients stop too
            const errors = t.logs.filter((line) => /"level":"(error|warn)"/.test(line)).join('');
            throw new Error(`client ${client}: ${res.status} ${res.text}\nservice errors: ${errors}`);
          }
          counts.accepted += res.body.accepted;
          counts.duplicates += res.body.duplicates;
        }
        return counts;
      }),
    );
    expect(sent).toBe(unique.length * 3);
    expect(results.reduce((n, r) => n + r.accepted, 0)).toBe(unique.length);
    expect(results.reduce((n, r) => n + r.duplicates, 0)).toBe(unique.length * 2);

    const raw = await loadRawRecords(t);
    expect(raw).toHaveLength(unique.length);
    // Rollups equal rollups rebuilt from the stored records by SQL.
    for (const { table, granularity, dimensions } of ROLLUPS) {
      const seconds = GRANULARITY_SECONDS[granularity];
      const keys = dimensions.map((d) => `${rawDimensionSql(d)} AS ${d}`);
      const expected = await t.dataSource.query(
        `SELECT to_timestamp(floor(extract(epoch FROM created_at) / ${seconds}) * ${seconds}) AS bucket_start, ${keys.join(', ')},
                SUM(input_tokens)::bigint AS input_tokens, SUM(output_tokens)::bigint AS output_tokens,
                SUM(input_cached_tokens)::bigint AS input_cached_tokens, SUM(input_audio_tokens)::bigint AS input_audio_tokens,
                SUM(output_audio_tokens)::bigint AS output_audio_tokens, count(*)::bigint AS num_model_requests, SUM(cost_nano)::bigint AS cost_nano,
                count(*) FILTER (WHERE unpriced)::bigint AS unpriced_requests
         FROM completion_records GROUP BY ${keys.map((_k, i) => i + 1).concat(keys.length + 1).join(', ')}`,
      );
      // Same key order in both (the sort compares JSON), dates as ISO strings.
      const normalise = (rows: Array<Record<string, unknown>>) =>
        rows
          .map((row) =>
            Object.fromEntries(
              Object.entries(row)
                .map(([k, v]): [string, unknown] => [k, v instanceof Date ? v.toISOString() : v])
                .sort(([a], [b]) => (a < b ? -1 : 1)),
            ),
          )
          .sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
      expect(normalise(await tableRows(t, table))).toEqual(normalise(expected));
    }
    // And the cost report equals the unique records' costs.
    const res = await t.get(`/api/v1/llm/usage/costs?start_time=${T0}&end_time=${T0 + 86400}&group_by=org_id`);
    const expected = referenceCosts(raw, { start: T0, end: T0 + 86400, groupBy: ['org_id'], filter: {} });
    expect(res.body.total_cost_nano).toBe(expected.total_cost_nano);
    const byOrg = (a: Record<string, unknown>, b: Record<string, unknown>) => ((a.org_id as string) < (b.org_id as string) ? -1 : 1);
    expect(res.body.data.map(({ cost: _c, ...l }: Record<string, unknown>) => l).sort(byOrg)).toEqual([...expected.data].sort(byOrg));
  });
});

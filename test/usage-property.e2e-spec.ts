import { createSystemKey, HttpResult, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { DAY, HOUR, ingestOk, MINUTE, T0 } from './helpers/usage';
import { loadRawRecords, RawRecord, ReferenceFilter, referenceBuckets, referenceCompletions, referenceCosts, sortResults } from './helpers/usage-reference';
import { int, MODELS, pick, prng, PROJECTS, randomRecords, USERS } from './helpers/usage-random';

const GROUP_FIELDS = ['user_id', 'api_key_id', 'model', 'project_id', 'batch', 'service_tier'];
const COST_FIELDS = ['model', 'api_key_id', 'team_id', 'external_user_id', 'org_id'];
const DAYS = 3;

type Params = Record<string, string | number | boolean | string[]>;

/** A query string with arrays in one of the three accepted encodings. */
function encode(params: Params, form: 'repeat' | 'brackets' | 'comma'): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(params)) {
    if (!Array.isArray(value)) parts.push(`${key}=${encodeURIComponent(String(value))}`);
    else if (form === 'comma') parts.push(`${key}=${value.map(encodeURIComponent).join(',')}`);
    else for (const v of value) parts.push(`${form === 'brackets' ? `${key}[]` : key}=${encodeURIComponent(v)}`);
  }
  return parts.join('&');
}

/**
 * Property: for random records and random queries (every group_by subset, filters, widths,
 * alignments, roles, page sizes and array encodings) the rollup-backed reports equal a
 * straightforward aggregation over the raw completion_records table, field by field.
 */
describe('usage reports equal a plain aggregation of the raw records (property)', () => {
  let t: TestApp;
  let raw: RawRecord[];
  const rand = prng(20240101);
  const principals: Array<{ key: string; filter: ReferenceFilter; orgId?: string; headers?: Record<string, string> }> = [];
  let keyIds: string[] = [];

  beforeAll(async () => {
    t = await startTestApp();
    const acme = await seedOrg(t, 'Acme', 'team-a');
    const globex = await seedOrg(t, 'Globex');
    const teamB = await acme.make('member', { team_id: 'team-b' });
    keyIds = [acme.member.id, acme.orgAdmin.id, teamB.id, globex.member.id, globex.orgAdmin.id];
    const ingestKey = await createSystemKey(t, 'ingest');
    for (const [model, from, input] of [
      [MODELS[0], T0 - DAY, '2.50'],
      [MODELS[0], T0 + DAY + 7 * HOUR, '3.10'],
      ['model-b', T0, '0.15'],
    ] as const) {
      const res = await t.put(`/api/v1/llm/prices/${encodeURIComponent(model)}`, {
        input_per_mtok: input,
        cached_input_per_mtok: '0.333333333',
        output_per_mtok: '10',
        effective_from: from,
      });
      expect(res.status).toBe(200);
    }
    const records = randomRecords(rand, keyIds, 3000, T0, DAYS, 'prop');
    for (let i = 0; i < records.length; i += 1000) await ingestOk(t, ingestKey.key, records.slice(i, i + 1000));
    raw = await loadRawRecords(t);
    expect(raw).toHaveLength(3000);

    principals.push(
      { key: t.adminKey, filter: {} },
      { key: t.adminKey, filter: { org_id: acme.org.id }, orgId: acme.org.id },
      { key: t.adminKey, filter: { org_id: globex.org.id }, orgId: globex.org.id },
      { key: acme.orgAdmin.key, filter: { org_id: acme.org.id } },
      { key: globex.orgAdmin.key, filter: { org_id: globex.org.id } },
      { key: teamB.key, filter: { org_id: acme.org.id, only_api_key_id: teamB.id } },
      { key: acme.orgAdmin.key, filter: { org_id: acme.org.id, only_user_id: 'user_2' }, headers: { 'x-on-behalf-of': 'user_2' } },
    );
  });
  afterAll(() => t.close());

  const subset = <T>(items: readonly T[]) => {
    const chosen = items.filter(() => rand() < 0.5);
    return chosen.length ? chosen : [pick(rand, items)];
  };

  /** A random range: aligned to a day, hour, minute or any second, at most `maxLength` long. */
  function randomRange(maxLength: number): { start: number; end: number } {
    const align = pick(rand, [DAY, HOUR, MINUTE, 1]);
    const start = Math.floor((T0 - HOUR + rand() * (DAYS * DAY + 2 * HOUR)) / align) * align;
    const endAlign = pick(rand, [DAY, HOUR, MINUTE, 1]);
    const end = Math.max(start + 1, Math.ceil((start + 1 + rand() * maxLength) / endAlign) * endAlign);
    return { start, end };
  }

  function randomFilters(): { params: Params; filter: ReferenceFilter } {
    const params: Params = {};
    const filter: ReferenceFilter = {};
    if (rand() < 0.25) params.user_ids = filter.user_ids = subset(USERS.flatMap((u) => (u === null ? [] : [u])));
    if (rand() < 0.25) params.api_key_ids = filter.api_key_ids = subset(keyIds);
    if (rand() < 0.25) params.models = filter.models = subset(MODELS);
    if (rand() < 0.25) params.project_ids = filter.project_ids = subset(PROJECTS.flatMap((p) => (p === null ? [] : [p])));
    if (rand() < 0.25) params.batch = filter.batch = rand() < 0.5;
    return { params, filter };
  }

  it('completions: 110 random queries over every group_by subset, filter and bucket width', async () => {
    let pages = 0;
    for (let i = 0; i < 110; i++) {
      const groupBy = GROUP_FIELDS.filter((_f, bit) => (i % 64) & (1 << bit));
      const width = pick(rand, ['1m', '1h', '1d']);
      const { start, end } = randomRange({ '1m': 6 * HOUR, '1h': 2 * DAY, '1d': (DAYS + 1) * DAY }[width]!);
      const who = pick(rand, principals);
      const { params, filter } = randomFilters();
      const buckets = referenceBuckets(start, end, width).length;
      const limit = Math.min(1440, Math.ceil(buckets / 4) + int(rand, buckets));
      const query: Params = { start_time: start, end_time: end, bucket_width: width, limit, ...params, ...(groupBy.length ? { group_by: groupBy } : {}) };
      if (who.orgId) query.org_id = who.orgId;
      const form = pick(rand, ['repeat', 'brackets', 'comma'] as const);
      const path = pick(rand, ['/api/v1/llm/usage/completions', '/v1/organization/usage/completions']);

      const got = [];
      let page: string | null = null;
      do {
        const res: HttpResult = await t.get(`${path}?${encode(page ? { ...query, page } : query, form)}`, { key: who.key, headers: who.headers });
        if (res.status !== 200) throw new Error(`query ${i}: ${res.status} ${res.text}`);
        got.push(...res.body.data.map((b: { results: Array<Record<string, unknown>> }) => ({ ...b, results: sortResults(b.results) })));
        page = res.body.next_page;
        expect(res.body.has_more).toBe(page !== null);
        pages += 1;
      } while (page);
      const expected = referenceCompletions(raw, { start, end, width, groupBy, filter: { ...who.filter, ...filter } });
      if (JSON.stringify(got) !== JSON.stringify(expected)) {
        // Name the failing query before the big diff.
        expect({ i, query, form, path }).toBeUndefined();
      }
      expect(got).toEqual(expected);
    }
    expect(pages).toBeGreaterThan(200);
  });

  it('costs: 40 random queries over every group_by subset, at any alignment', async () => {
    for (let i = 0; i < 40; i++) {
      const groupBy = COST_FIELDS.filter((_f, bit) => (i % 32) & (1 << bit));
      const { start, end } = randomRange((DAYS + 1) * DAY);
      const who = pick(rand, principals);
      const query: Params = { start_time: start, end_time: end, ...(groupBy.length ? { group_by: groupBy } : {}) };
      if (who.orgId) query.org_id = who.orgId;
      const res = await t.get(`/api/v1/llm/usage/costs?${encode(query, pick(rand, ['repeat', 'brackets', 'comma'] as const))}`, {
        key: who.key,
        headers: who.headers,
      });
      expect(res.status).toBe(200);
      const expected = referenceCosts(raw, { start, end, groupBy, filter: who.filter });
      const lines = res.body.data.map(({ cost, ...line }: Record<string, unknown>) => {
        // The double nearest to the exact decimal (not a float division).
        const nano = BigInt(line.cost_nano as string);
        expect(cost).toBe(Number(`${nano / 1_000_000_000n}.${(nano % 1_000_000_000n).toString().padStart(9, '0')}`));
        return line;
      });
      const order = (rows: Array<Record<string, unknown>>) => [...rows].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
      expect(order(lines)).toEqual(order(expected.data));
      expect(res.body.total_cost_nano).toBe(expected.total_cost_nano);
      expect(res.body.unpriced_models).toEqual(expected.unpriced_models);
      const costs = lines.map((l: { cost_nano: string }) => BigInt(l.cost_nano));
      expect(costs).toEqual([...costs].sort((a, b) => (a > b ? -1 : a < b ? 1 : 0)));
    }
  });
});

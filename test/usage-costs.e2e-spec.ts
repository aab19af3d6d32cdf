import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { DAY, HOUR, ingestOk, query, record, T0 } from './helpers/usage';
import { loadRawRecords, RawRecord, ReferenceFilter, referenceCosts } from './helpers/usage-reference';

const M = 'meetkai:functionary-urdu-mini-pak';
const PATH = '/api/v1/llm/usage/costs';

describe('GET /api/v1/llm/usage/costs (SPEC §3.3)', () => {
  let t: TestApp;
  let acme: Awaited<ReturnType<typeof seedOrg>>;
  let globex: Awaited<ReturnType<typeof seedOrg>>;
  let keyB: { id: string; key: string };
  let raw: RawRecord[];

  beforeAll(async () => {
    t = await startTestApp({ CURRENCY: 'EUR' });
    acme = await seedOrg(t, 'Acme', 'team-a');
    globex = await seedOrg(t, 'Globex');
    keyB = await acme.make('member', { team_id: 'team-b' });
    const ingestKey = await createSystemKey(t, 'ingest');
    const price = await t.put(`/api/v1/llm/prices/${encodeURIComponent(M)}`, {
      input_per_mtok: '2.50',
      cached_input_per_mtok: '1.25',
      output_per_mtok: '10.00',
      effective_from: T0 - DAY,
    });
    expect(price.status).toBe(200);
    const a = acme.member.id;
    await ingestOk(t, ingestKey.key, [
      // (1000 × 2.5e9 + 250 × 10e9) / 1e6 = 5,000,000 nano
      record(a, { input_tokens: 1000, output_tokens: 250, user_id: 'user_123', created_at: T0 + HOUR }),
      record(a, { input_tokens: 1000, input_cached_tokens: 400, output_tokens: 0, created_at: T0 + 2 * HOUR }), // (600 × 2.5e9 + 400 × 1.25e9) / 1e6 = 2,000,000
      record(keyB.id, { input_tokens: 10, output_tokens: 10, user_id: 'user_456', created_at: T0 + DAY + 30 }),
      record(keyB.id, { model: 'preview-model', user_id: 'user_456', created_at: T0 + DAY + HOUR }),
      record(keyB.id, { model: 'sent-cost', cost_nano: '9000000000000000000', created_at: T0 + 2 * DAY }),
      record(globex.member.id, { cost_nano: 123, created_at: T0 + HOUR }),
      record(globex.member.id, { model: 'globex-unpriced', created_at: T0 + HOUR }),
    ]);
    raw = await loadRawRecords(t);
  });
  afterAll(() => t.close());

  const get = (params: Record<string, string | number | string[]>, key = acme.orgAdmin.key, headers = {}) =>
    t.get(`${PATH}?${query(params)}`, { key, headers });

  it('reports cost per group, the exact total and the unpriced models', async () => {
    const res = await get({ start_time: T0, end_time: T0 + 3 * DAY, group_by: 'model' });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      object: 'llm.usage.costs',
      currency: 'eur',
      start_time: T0,
      end_time: T0 + 3 * DAY,
      group_by: ['model'],
      data: [
        { model: 'sent-cost', api_key_id: null, team_id: null, external_user_id: null, org_id: null, cost: 9000000000, cost_nano: '9000000000000000000' },
        { model: M, api_key_id: null, team_id: null, external_user_id: null, org_id: null, cost: 0.007125, cost_nano: '7125000' },
        { model: 'preview-model', api_key_id: null, team_id: null, external_user_id: null, org_id: null, cost: 0, cost_nano: '0' },
      ],
      has_more: false,
      next_page: null,
      total_cost: 9000000000.007125,
      total_cost_nano: '9000000000007125000',
      unpriced_models: ['preview-model'],
    });
  });

  it('pages through every line with limit, has_more and next_page; the total covers every page', async () => {
    const range = { start_time: T0 - DAY, end_time: T0 + 3 * DAY, group_by: ['api_key_id', 'model', 'external_user_id'] };
    const all = await get(range, t.adminKey);
    expect(all.body.has_more).toBe(false);
    expect(all.body.data.length).toBeGreaterThan(4);
    for (const limit of [1, 2, 3]) {
      const lines: unknown[] = [];
      let page: string | null = null;
      let pages = 0;
      do {
        const res: Awaited<ReturnType<typeof get>> = await get({ ...range, limit, ...(page ? { page } : {}) }, t.adminKey);
        expect(res.status).toBe(200);
        expect(res.body.data.length).toBeLessThanOrEqual(limit);
        expect(res.body.total_cost_nano).toBe(all.body.total_cost_nano);
        expect(res.body.has_more).toBe(res.body.next_page !== null);
        lines.push(...res.body.data);
        page = res.body.next_page;
        pages += 1;
      } while (page !== null);
      expect(pages).toBe(Math.ceil(all.body.data.length / limit));
      expect(lines).toEqual(all.body.data); // the same lines in the same order: most expensive first
    }
    const first = await get({ ...range, limit: 1 }, t.adminKey);
    expect(first.body).toMatchObject({ has_more: true, next_page: expect.any(String) });
    // A cursor belongs to its query: other filters, another range or garbage are a 400.
    for (const params of [{ ...range, group_by: ['model'] }, { ...range, end_time: T0 + 2 * DAY }]) {
      const res = await get({ ...params, page: first.body.next_page }, t.adminKey);
      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({ code: 'invalid_cursor', param: 'page' });
    }
    expect((await get({ ...range, page: 'eyJub3Bl' }, t.adminKey)).body.error.code).toBe('invalid_cursor');
    // A value that is no cursor of ours at all reads as the first page (as the MKA1 examples send it).
    expect((await get({ ...range, limit: 1, page: 'cursor_abc123' }, t.adminKey)).body).toEqual(first.body);
    expect((await get({ ...range, limit: 10001 }, t.adminKey)).body.error.param).toBe('limit');
    expect((await get({ ...range, limit: 0 }, t.adminKey)).body.error.param).toBe('limit');
  });

  it('groups by every field and combination, equal to a sum over the raw records', async () => {
    const fields = ['model', 'api_key_id', 'team_id', 'external_user_id', 'org_id'];
    for (let mask = 0; mask < 32; mask++) {
      const groupBy = fields.filter((_f, i) => mask & (1 << i));
      const res = await get({ start_time: T0 - DAY, end_time: T0 + 3 * DAY, ...(groupBy.length ? { group_by: groupBy } : {}) }, t.adminKey);
      const expected = referenceCosts(raw, { start: T0 - DAY, end: T0 + 3 * DAY, groupBy, filter: {} });
      expect(res.body.group_by).toEqual(groupBy);
      const lines = res.body.data.map(({ cost: _cost, ...line }: Record<string, unknown>) => line);
      expect(sortLines(lines)).toEqual(sortLines(expected.data));
      expect(res.body).toMatchObject({ total_cost_nano: expected.total_cost_nano, unpriced_models: ['globex-unpriced', 'preview-model'] });
    }
  });

  it('counts exactly [start_time, end_time) at any alignment', async () => {
    for (const [start, end] of [
      [T0 + HOUR + 1, T0 + DAY + 31],
      [T0 + DAY + 30, T0 + DAY + 31],
      [T0 + 2 * HOUR, T0 + DAY + HOUR],
      [T0 + 90, T0 + 2 * DAY + 1],
    ]) {
      const res = await get({ start_time: start, end_time: end, group_by: ['api_key_id', 'external_user_id'] });
      const expected = referenceCosts(raw, { start, end, groupBy: ['api_key_id', 'external_user_id'], filter: { org_id: acme.org.id } });
      expect(sortLines(res.body.data.map(({ cost: _c, ...l }: Record<string, unknown>) => l))).toEqual(sortLines(expected.data));
      expect(res.body.total_cost_nano).toBe(expected.total_cost_nano);
      expect(res.body.unpriced_models).toEqual(expected.unpriced_models);
    }
  });

  it('scopes like the usage report', async () => {
    const range = { start_time: T0 - DAY, end_time: T0 + 3 * DAY, group_by: ['team_id', 'model'] };
    const check = async (key: string, filter: ReferenceFilter, headers = {}) => {
      const res = await get(range, key, headers);
      expect(res.status).toBe(200);
      const expected = referenceCosts(raw, { start: range.start_time, end: range.end_time, groupBy: range.group_by, filter });
      expect(sortLines(res.body.data.map(({ cost: _c, ...l }: Record<string, unknown>) => l))).toEqual(sortLines(expected.data));
      expect(res.body.unpriced_models).toEqual(expected.unpriced_models);
    };
    await check(keyB.key, { org_id: acme.org.id, only_api_key_id: keyB.id });
    await check(acme.orgAdmin.key, { org_id: acme.org.id, only_user_id: 'user_456' }, { 'x-on-behalf-of': 'user_456' });
    await check(globex.orgAdmin.key, { org_id: globex.org.id });
    expect((await get({ ...range, org_id: globex.org.id }, globex.orgAdmin.key)).status).toBe(403);
    const admin = await get({ ...range, org_id: globex.org.id }, t.adminKey);
    expect(admin.body.total_cost_nano).toBe('123');
    expect((await get(range, (await createSystemKey(t, 'ingest')).key)).status).toBe(403);
  });

  it('requires start_time and end_time and known group_by values', async () => {
    const res = await get({ start_time: T0, group_by: 'project_id' });
    expect(res.status).toBe(400);
    expect(res.body.error.details.map((d: { param: string }) => d.param).sort()).toEqual(['end_time', 'group_by']);
    expect((await get({ start_time: T0 + DAY, end_time: T0 })).body.error.details).toEqual([{ param: 'start_time', message: 'must be before end_time' }]);
  });
});

function sortLines(lines: Array<Record<string, unknown>>) {
  return [...lines].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
}

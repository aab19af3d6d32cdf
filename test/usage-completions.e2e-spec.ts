import { USAGE_PAGE_EXAMPLES } from '../src/usage/dto/usage.examples';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { DAY, HOUR, ingestOk, MINUTE, query, record, T0 } from './helpers/usage';
import { loadRawRecords, RawRecord, ReferenceFilter, referenceCompletions, sortResults } from './helpers/usage-reference';

const M = 'meetkai:functionary-urdu-mini-pak';
const PATH = '/api/v1/llm/usage/completions';

describe('GET /api/v1/llm/usage/completions (SPEC §3.2, seed)', () => {
  let t: TestApp;
  let acme: Awaited<ReturnType<typeof seedOrg>>;
  let globex: Awaited<ReturnType<typeof seedOrg>>;
  let keyB: { id: string; key: string };
  let raw: RawRecord[];

  beforeAll(async () => {
    t = await startTestApp();
    acme = await seedOrg(t, 'Acme', 'team-a');
    globex = await seedOrg(t, 'Globex');
    keyB = await acme.make('member');
    const ingestKey = await createSystemKey(t, 'ingest');
    const a = acme.member.id;
    const b = keyB.id;
    const twelve = Array.from({ length: 12 }, (_v, i) =>
      record(i < 6 ? a : b, {
        user_id: i < 6 ? 'user_123' : 'user_456',
        created_at: T0 + (i < 6 ? HOUR + i * MINUTE : 5 * HOUR),
        input_tokens: 100,
        output_tokens: 25,
        input_cached_tokens: i < 10 ? 20 : 0,
      }),
    );
    await ingestOk(t, ingestKey.key, [
      ...twelve,
      record(a, { user_id: 'user_123', model: 'other-model', created_at: T0 + 2 * HOUR }),
      record(a, { user_id: 'user_789', created_at: T0 + 3 * HOUR, batch: true, service_tier: 'flex', project_id: 'proj_1' }),
      record(b, { created_at: T0 + 3 * HOUR, project_id: 'proj_2', service_tier: 'default', input_audio_tokens: 3, output_audio_tokens: 4 }),
      record(a, { user_id: 'user_123', created_at: T0 + DAY }),
      record(a, { user_id: 'user_123', created_at: T0 - 1 }),
      record(globex.member.id, { user_id: 'user_123', created_at: T0 + HOUR }),
      // Later days, for pagination and ragged edges.
      record(a, { created_at: T0 + 2 * DAY + 59, user_id: 'user_123' }),
      record(a, { created_at: T0 + 2 * DAY + 90 }),
      record(b, { created_at: T0 + 2 * DAY + 2 * HOUR + 29 }),
      record(b, { created_at: T0 + 2 * DAY + 2 * HOUR + 30 }),
      record(a, { created_at: T0 + 4 * DAY + 12 * HOUR, batch: true }),
    ]);
    raw = await loadRawRecords(t);
  });
  afterAll(() => t.close());

  const get = (params: Record<string, string | number | boolean | Array<string | number>>, key = acme.orgAdmin.key, headers = {}) =>
    t.get(`${PATH}?${query(params)}`, { key, headers });

  /** Every bucket across pages. */
  async function allPages(params: Record<string, string | number | boolean | string[]>, key = acme.orgAdmin.key, headers = {}) {
    const buckets = [];
    let page: string | undefined;
    for (let i = 0; i < 100; i++) {
      const res = await get(page ? { ...params, page } : params, key, headers);
      if (res.status !== 200) throw new Error(`${res.status} ${res.text}`);
      buckets.push(...res.body.data.map((b: { results: Array<Record<string, unknown>> }) => ({ ...b, results: sortResults(b.results) })));
      if (!res.body.has_more) {
        expect(res.body.next_page).toBeNull();
        return buckets;
      }
      page = res.body.next_page;
    }
    throw new Error('too many pages');
  }

  it("answers the seed's request, verbatim (its page cursor included), with the seed's response shape", async () => {
    const res = await get({
      start_time: 1704067200,
      end_time: 1704153600,
      limit: 30,
      // Not a cursor this service issues: read as the first page, so the example works as it is.
      page: 'cursor_abc123',
      user_ids: ['user_123', 'user_456'],
      group_by: ['model'],
      models: [M],
    });
    expect(res.status).toBe(200);
    // Exactly the example the OpenAPI document shows for this operation.
    expect(res.body).toEqual(USAGE_PAGE_EXAMPLES.oneDay.value);
  });

  it('groups by each field, null for ungrouped fields and for records without the value', async () => {
    const byUser = await get({ start_time: T0, end_time: T0 + DAY, group_by: 'user_id' });
    expect(byUser.body.data[0].results.map((r: { user_id: string | null; num_model_requests: number }) => [r.user_id, r.num_model_requests]).sort()).toEqual([
      ['user_123', 7],
      ['user_456', 6],
      ['user_789', 1],
      [null, 1],
    ].sort());
    for (const groupBy of ['user_id', 'api_key_id', 'model', 'project_id', 'batch', 'service_tier', 'user_id,api_key_id,model,project_id,batch,service_tier', '']) {
      const params = { start_time: T0 - HOUR, end_time: T0 + 5 * DAY, ...(groupBy ? { group_by: groupBy } : {}) };
      const expected = referenceCompletions(raw, { start: params.start_time, end: params.end_time, width: '1d', groupBy: groupBy.split(','), filter: { org_id: acme.org.id } });
      expect(await allPages(params)).toEqual(expected);
    }
  });

  it('applies every filter', async () => {
    const cases: Array<[Record<string, string | boolean | string[]>, ReferenceFilter]> = [
      [{ user_ids: ['user_123', 'user_789'] }, { user_ids: ['user_123', 'user_789'] }],
      [{ api_key_ids: keyB.id }, { api_key_ids: [keyB.id] }],
      [{ models: 'other-model' }, { models: ['other-model'] }],
      [{ project_ids: 'proj_1,proj_2' }, { project_ids: ['proj_1', 'proj_2'] }],
      [{ batch: true }, { batch: true }],
      [{ batch: false, models: M, api_key_ids: [acme.member.id] }, { batch: false, models: [M], api_key_ids: [acme.member.id] }],
    ];
    for (const [params, filter] of cases) {
      const q = { start_time: T0, end_time: T0 + 5 * DAY, bucket_width: '1h', limit: 200, group_by: 'model,user_id', ...params };
      const expected = referenceCompletions(raw, { start: T0, end: T0 + 5 * DAY, width: '1h', groupBy: ['model', 'user_id'], filter: { org_id: acme.org.id, ...filter } });
      expect(await allPages(q)).toEqual(expected);
    }
  });

  it('returns every bucket of the range, empty ones with no results', async () => {
    const res = await get({ start_time: T0, end_time: T0 + DAY, bucket_width: '1h' });
    expect(res.body.data).toHaveLength(24);
    expect(res.body.data.map((b: { start_time: number }) => b.start_time)).toEqual(Array.from({ length: 24 }, (_v, i) => T0 + i * HOUR));
    expect(res.body.data.filter((b: { results: unknown[] }) => b.results.length > 0).map((b: { start_time: number }) => (b.start_time - T0) / HOUR)).toEqual([1, 2, 3, 5]);
    expect(res.body.data[0]).toEqual({ object: 'bucket', start_time: T0, end_time: T0 + HOUR, results: [] });
    expect(res.body.has_more).toBe(false);
  });

  it('uses per-width default limits and pages with an opaque cursor', async () => {
    const day = await get({ start_time: T0, end_time: T0 + 10 * DAY });
    expect(day.body.data).toHaveLength(7);
    expect(day.body.has_more).toBe(true);
    expect((await get({ start_time: T0, end_time: T0 + 10 * DAY, bucket_width: '1h' })).body.data).toHaveLength(24);
    expect((await get({ start_time: T0, end_time: T0 + 10 * DAY, bucket_width: '1m' })).body.data).toHaveLength(60);
    expect((await get({ start_time: T0, end_time: T0 + 10 * DAY, bucket_width: '1m', limit: 1440 })).body.data).toHaveLength(1440);

    const first = await get({ start_time: T0, end_time: T0 + 5 * DAY, limit: 2 });
    expect(first.body).toMatchObject({ has_more: true, next_page: expect.stringMatching(/^[A-Za-z0-9_-]+$/) });
    expect(first.body.data.map((b: { start_time: number }) => b.start_time)).toEqual([T0, T0 + DAY]);
    const second = await get({ start_time: T0, end_time: T0 + 5 * DAY, limit: 2, page: first.body.next_page });
    expect(second.body.data.map((b: { start_time: number }) => b.start_time)).toEqual([T0 + 2 * DAY, T0 + 3 * DAY]);
    const third = await get({ start_time: T0, end_time: T0 + 5 * DAY, limit: 2, page: second.body.next_page });
    expect(third.body).toMatchObject({ has_more: false, next_page: null });
    expect(third.body.data.map((b: { start_time: number }) => b.start_time)).toEqual([T0 + 4 * DAY]);
    expect(third.body.data[0].results[0].num_model_requests).toBe(1);
    // All pages together equal one big page.
    const whole = await get({ start_time: T0, end_time: T0 + 5 * DAY, limit: 5 });
    expect([...first.body.data, ...second.body.data, ...third.body.data]).toEqual(whole.body.data);
  });

  it('keeps the range of the first page when end_time is omitted', async () => {
    const start = Math.floor(Date.now() / 1000 / DAY) * DAY - 3 * DAY;
    const first = await get({ start_time: start, limit: 2 });
    expect(first.body.has_more).toBe(true);
    const second = await get({ start_time: start, limit: 2, page: first.body.next_page });
    expect(second.status).toBe(200);
    expect(second.body.data[0].start_time).toBe(start + 2 * DAY);
  });

  it('refuses a bad cursor, or one from another query, with a 400', async () => {
    const first = await get({ start_time: T0, end_time: T0 + 5 * DAY, limit: 2 });
    const expectInvalid = async (params: Record<string, string | number>) => {
      const res = await get(params);
      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_cursor', param: 'page' });
    };
    await expectInvalid({ start_time: T0, end_time: T0 + 5 * DAY, limit: 2, page: first.body.next_page.slice(0, -2) });
    await expectInvalid({ start_time: T0, end_time: T0 + 5 * DAY, limit: 2, page: first.body.next_page, group_by: 'model' });
    await expectInvalid({ start_time: T0, end_time: T0 + 6 * DAY, limit: 2, page: first.body.next_page });
    await expectInvalid({ start_time: T0, end_time: T0 + 5 * DAY, bucket_width: '1h', page: first.body.next_page });
    const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(first.body.next_page, 'base64url').toString()), n: T0 + 5 })).toString('base64url');
    await expectInvalid({ start_time: T0, end_time: T0 + 5 * DAY, limit: 2, page: forged });
    const open = await get({ start_time: T0, limit: 2 });
    const farEnd = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(open.body.next_page, 'base64url').toString()), e: 2 ** 52 })).toString('base64url');
    await expectInvalid({ start_time: T0, limit: 2, page: farEnd });
    // Another principal cannot reuse it either.
    const other = await get({ start_time: T0, end_time: T0 + 5 * DAY, limit: 2, page: first.body.next_page }, acme.member.key);
    expect(other.body.error.code).toBe('invalid_cursor');
  });

  it('accepts arrays as repeated keys, bracket form and comma-separated values alike', async () => {
    const base = `start_time=${T0}&end_time=${T0 + DAY}`;
    const forms = [
      `${base}&user_ids=user_123&user_ids=user_456&group_by=model&group_by=user_id`,
      `${base}&user_ids[]=user_123&user_ids[]=user_456&group_by[]=model&group_by[]=user_id`,
      `${base}&user_ids=user_123,user_456&group_by=model,user_id`,
      `${base}&user_ids=${encodeURIComponent('user_123,user_456')}&group_by=model%2Cuser_id`,
    ];
    const bodies = await Promise.all(forms.map(async (q) => (await t.get(`${PATH}?${q}`, { key: acme.orgAdmin.key })).body));
    expect(bodies[0].data[0].results).toHaveLength(3);
    for (const body of bodies) expect(body).toEqual(bodies[0]);
    const single = await t.get(`${PATH}?${base}&user_ids=user_789`, { key: acme.orgAdmin.key });
    expect(single.body.data[0].results[0].num_model_requests).toBe(1);
  });

  it('takes each value of repeated keys and of the bracket form whole: a model or user id that holds a comma can be selected', async () => {
    const org = await seedOrg(t, 'Commas');
    const ingestKey = await createSystemKey(t, 'ingest');
    const at = Math.floor(Date.now() / 1000) - 120;
    await ingestOk(t, ingestKey.key, [
      record(org.member.id, { model: 'acme,v2', user_id: 'smith, john', input_tokens: 7, created_at: at }),
      record(org.member.id, { model: 'acme', user_id: 'smith', input_tokens: 100, created_at: at }),
    ]);
    const base = `start_time=${at - 60}&end_time=${at + 60}&bucket_width=1d`;
    const tokens = async (q: string) => {
      const res = await t.get(`${PATH}?${base}&${q}`, { key: org.orgAdmin.key });
      expect(res.status).toBe(200);
      return res.body.data[0].results.map((r: { input_tokens: number }) => r.input_tokens);
    };
    expect(await tokens(`models[]=${encodeURIComponent('acme,v2')}`)).toEqual([7]);
    expect(await tokens(`models=${encodeURIComponent('acme,v2')}&models=zzz`)).toEqual([7]);
    expect(await tokens(`user_ids[]=${encodeURIComponent('smith, john')}`)).toEqual([7]);
    // One plain value is a comma list: "acme" and "v2".
    expect(await tokens(`models=acme,v2`)).toEqual([100]);
  });

  it('counts exactly [start_time, end_time) for ragged ranges, clipping the edge buckets', async () => {
    const start = T0 + 2 * DAY + 60; // drops the record at +59
    const end = T0 + 2 * DAY + 2 * HOUR + 30; // keeps +29, drops +30
    for (const width of ['1m', '1h', '1d']) {
      const expected = referenceCompletions(raw, { start, end, width, groupBy: ['api_key_id'], filter: { org_id: acme.org.id } });
      expect(await allPages({ start_time: start, end_time: end, bucket_width: width, group_by: 'api_key_id', limit: 1440 })).toEqual(expected);
    }
    const res = await get({ start_time: start, end_time: end, bucket_width: '1h' });
    expect(res.body.data.map((b: { start_time: number; end_time: number }) => [b.start_time, b.end_time])).toEqual([
      [start, T0 + 2 * DAY + HOUR],
      [T0 + 2 * DAY + HOUR, T0 + 2 * DAY + 2 * HOUR],
      [T0 + 2 * DAY + 2 * HOUR, end],
    ]);
    expect(res.body.data.map((b: { results: Array<{ num_model_requests: number }> }) => b.results[0]?.num_model_requests ?? 0)).toEqual([1, 0, 1]);
  });

  describe('scoping', () => {
    const whole = { start_time: T0 - DAY, end_time: T0 + 5 * DAY, group_by: 'api_key_id,user_id', limit: 31 };
    const expected = (filter: ReferenceFilter) =>
      referenceCompletions(raw, { start: whole.start_time, end: whole.end_time, width: '1d', groupBy: ['api_key_id', 'user_id'], filter });

    it('shows a member its own key only', async () => {
      expect(await allPages(whole, acme.member.key)).toEqual(expected({ org_id: acme.org.id, only_api_key_id: acme.member.id }));
      expect(await allPages({ ...whole, api_key_ids: keyB.id }, acme.member.key)).toEqual(expected({ api_key_ids: ['none'] }));
    });

    it('shows a request on behalf of a user that user only', async () => {
      const headers = { 'x-on-behalf-of': 'user_123' };
      expect(await allPages(whole, acme.orgAdmin.key, headers)).toEqual(expected({ org_id: acme.org.id, only_user_id: 'user_123' }));
      expect(await allPages(whole, acme.member.key, headers)).toEqual(expected({ org_id: acme.org.id, only_user_id: 'user_123', only_api_key_id: acme.member.id }));
    });

    it('lets only cluster admins use org_id; without it they see every org', async () => {
      const forbidden = await get({ ...whole, org_id: acme.org.id }, acme.orgAdmin.key);
      expect(forbidden.status).toBe(403);
      expect(forbidden.body.error).toEqual({ message: 'Only cluster admins may filter by org_id', type: 'permission_error', code: 'forbidden', param: null });
      expect(await allPages({ ...whole, org_id: globex.org.id }, t.adminKey)).toEqual(expected({ org_id: globex.org.id }));
      expect(await allPages(whole, t.adminKey)).toEqual(expected({}));
    });

    it("never shows another tenant's data", async () => {
      expect(await allPages(whole, globex.orgAdmin.key)).toEqual(expected({ org_id: globex.org.id }));
      const acmeOnly = await allPages({ ...whole, api_key_ids: acme.member.id }, globex.orgAdmin.key);
      expect(acmeOnly.every((b) => b.results.length === 0)).toBe(true);
    });

    it('refuses ingest keys', async () => {
      const ingestKey = await createSystemKey(t, 'ingest');
      expect((await get(whole, ingestKey.key)).status).toBe(403);
    });
  });

  it('names every bad parameter, unknown ones included', async () => {
    const res = await t.get(`${PATH}?start_time=abc&bucket_width=1w&limit=0&group_by=team_id&batch=maybe&models=&extra=1`, { key: acme.orgAdmin.key });
    expect(res.status).toBe(400);
    expect(res.body.error.details.map((d: { param: string }) => d.param).sort()).toEqual(
      ['batch', 'bucket_width', 'extra', 'group_by', 'limit', 'models', 'start_time'].sort(),
    );
    expect((await get({ start_time: T0, limit: 1441 })).body.error.param).toBe('limit');
    expect((await get({})).body.error.param).toBe('start_time');
    const backwards = await get({ start_time: T0, end_time: T0 });
    expect(backwards.status).toBe(400);
    expect(backwards.body.error.details).toEqual([{ param: 'start_time', message: 'must be before end_time' }]);
    expect((await get({ start_time: Math.floor(Date.now() / 1000) + DAY })).body.error.param).toBe('start_time');
  });
});

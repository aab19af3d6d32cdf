import OpenAI from 'openai';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { DAY, HOUR, ingestOk, query, record, T0 } from './helpers/usage';

const M = 'meetkai:functionary-urdu-mini-pak';

/** SPEC §3.4: a client of OpenAI's Usage API works by changing only its base URL. */
describe('OpenAI-compatible aliases, through the openai SDK', () => {
  let t: TestApp;
  let acme: Awaited<ReturnType<typeof seedOrg>>;
  let client: OpenAI;

  beforeAll(async () => {
    t = await startTestApp();
    acme = await seedOrg(t, 'Acme');
    const ingestKey = await createSystemKey(t, 'ingest');
    await ingestOk(t, ingestKey.key, [
      record(acme.member.id, { user_id: 'user_123', created_at: T0 + HOUR, cost_nano: 1_500_000_000, project_id: 'proj_1' }),
      record(acme.member.id, { user_id: 'user_456', created_at: T0 + 2 * HOUR, cost_nano: 250_000_000, batch: true }),
      record(acme.member.id, { model: 'other-model', created_at: T0 + DAY + HOUR, cost_nano: 10 }),
      record(acme.member.id, { created_at: T0 + 3 * DAY, cost_nano: 1, project_id: 'proj_1' }),
    ]);
    client = new OpenAI({ adminAPIKey: acme.orgAdmin.key, baseURL: `${t.baseUrl}/v1`, maxRetries: 0 });
  });
  afterAll(() => t.close());

  it('serves client.admin.organization.usage.completions with the MKA1 report', async () => {
    const params = { start_time: T0, end_time: T0 + 4 * DAY, bucket_width: '1d' as const, group_by: ['model' as const, 'user_id' as const], limit: 2 };
    const first = await client.admin.organization.usage.completions(params);
    const direct = await t.get(`/api/v1/llm/usage/completions?${query(params)}`, { key: acme.orgAdmin.key });
    expect(first).toEqual(direct.body);
    expect(first.object).toBe('page');
    expect(first.has_more).toBe(true);
    expect(first.data[0].results).toHaveLength(2);
    expect(first.data[0].results[0]).toMatchObject({ object: 'organization.usage.completions.result', model: M, num_model_requests: 1 });

    const second = await client.admin.organization.usage.completions({ ...params, page: first.next_page! });
    expect(second.data.map((b) => b.start_time)).toEqual([T0 + 2 * DAY, T0 + 3 * DAY]);
    expect(second).toMatchObject({ has_more: false, next_page: null });
  });

  it('passes every filter the SDK sends (bracket arrays included)', async () => {
    const res = await client.admin.organization.usage.completions({
      start_time: T0,
      end_time: T0 + DAY,
      bucket_width: '1h',
      limit: 24,
      models: [M],
      user_ids: ['user_123', 'user_456'],
      api_key_ids: [acme.member.id],
      project_ids: ['proj_1'],
      batch: false,
      group_by: ['project_id', 'user_id', 'api_key_id', 'model', 'batch', 'service_tier'],
    });
    const results = res.data.flatMap((b) => b.results);
    expect(results).toEqual([
      {
        object: 'organization.usage.completions.result',
        input_tokens: 100,
        output_tokens: 25,
        input_cached_tokens: 0,
        num_model_requests: 1,
        input_audio_tokens: 0,
        output_audio_tokens: 0,
        user_id: 'user_123',
        api_key_id: acme.member.id,
        model: M,
        batch: false,
        service_tier: null,
        project_id: 'proj_1',
      },
    ]);
  });

  it('serves client.admin.organization.usage.costs as daily buckets of organization.costs.result', async () => {
    const res = await client.admin.organization.usage.costs({ start_time: T0, end_time: T0 + 4 * DAY, group_by: ['line_item', 'project_id'], limit: 3 });
    expect(res).toEqual({
      object: 'page',
      data: [
        {
          object: 'bucket',
          start_time: T0,
          end_time: T0 + DAY,
          results: [
            { object: 'organization.costs.result', amount: { value: 1.5, currency: 'usd' }, line_item: M, project_id: 'proj_1', api_key_id: null },
            { object: 'organization.costs.result', amount: { value: 0.25, currency: 'usd' }, line_item: M, project_id: null, api_key_id: null },
          ].sort((a, b) => (String(a.project_id) < String(b.project_id) ? -1 : 1)),
        },
        {
          object: 'bucket',
          start_time: T0 + DAY,
          end_time: T0 + 2 * DAY,
          results: [{ object: 'organization.costs.result', amount: { value: 0.00000001, currency: 'usd' }, line_item: 'other-model', project_id: null, api_key_id: null }],
        },
        { object: 'bucket', start_time: T0 + 2 * DAY, end_time: T0 + 3 * DAY, results: [] },
      ],
      has_more: true,
      next_page: expect.any(String),
    });
    const next = await client.admin.organization.usage.costs({
      start_time: T0,
      end_time: T0 + 4 * DAY,
      group_by: ['line_item', 'project_id'],
      limit: 3,
      page: res.next_page!,
    });
    expect(next.data).toHaveLength(1);
    expect(next.data[0].results).toEqual([
      { object: 'organization.costs.result', amount: { value: 1e-9, currency: 'usd' }, line_item: M, project_id: 'proj_1', api_key_id: null },
    ]);
    const total = await client.admin.organization.usage.costs({ start_time: T0, end_time: T0 + DAY, api_key_ids: [acme.member.id] });
    expect(total.data[0].results).toEqual([
      { object: 'organization.costs.result', amount: { value: 1.75, currency: 'usd' }, line_item: null, project_id: null, api_key_id: null },
    ]);
  });

  it('answers bad keys and bad parameters in a shape the SDK turns into its errors', async () => {
    const stranger = new OpenAI({ adminAPIKey: 'mk-' + 'x'.repeat(40), baseURL: `${t.baseUrl}/v1`, maxRetries: 0 });
    await expect(stranger.admin.organization.usage.completions({ start_time: T0 })).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    const bad = client.admin.organization.usage.costs({ start_time: T0, bucket_width: '1h' as '1d' });
    await expect(bad).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    await expect(bad).rejects.toMatchObject({ status: 400, error: { code: 'validation_failed', param: 'bucket_width' } });
    const member = new OpenAI({ adminAPIKey: acme.member.key, baseURL: `${t.baseUrl}/v1`, maxRetries: 0 });
    await expect(member.admin.organization.usage.costs({ start_time: T0, limit: 181 })).rejects.toBeInstanceOf(OpenAI.BadRequestError);
  });
});

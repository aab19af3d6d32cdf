import { gzipSync } from 'node:zlib';
import { ROLLUPS } from '../src/usage/rollups';
import { IngestRecordDto } from '../src/usage/dto/ingest.dto';
import { UsageIngestService, UsageTouched } from '../src/usage/usage-ingest.service';
import { UsageSpendService } from '../src/usage/usage-spend.service';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { DAY, foldJournal, HOUR, ingest, ingestOk, record, T0, tableRows } from './helpers/usage';

const MAX_BIGINT = '9223372036854775807';

describe('usage ingest (SPEC §3.1)', () => {
  let t: TestApp;
  let acme: Awaited<ReturnType<typeof seedOrg>>;
  let globex: Awaited<ReturnType<typeof seedOrg>>;
  let ingestKey: { id: string; key: string };

  const count = async (table = 'completion_records') => Number((await t.dataSource.query(`SELECT count(*) AS n FROM ${table}`))[0].n);

  beforeAll(async () => {
    t = await startTestApp();
    acme = await seedOrg(t, 'Acme', 'team-a');
    globex = await seedOrg(t, 'Globex');
    ingestKey = await createSystemKey(t, 'ingest');
  });
  afterAll(() => t.close());

  it('stores a batch with the org and team of each key, and answers with the counts', async () => {
    const records = [
      record(acme.member.id, { id: 'chatcmpl-a1', user_id: 'user_123', project_id: 'proj_1', batch: true, service_tier: 'flex', cost_nano: 42 }),
      record(acme.member.id, { id: 'chatcmpl-a2', input_tokens: 10, input_cached_tokens: 4, input_audio_tokens: 1, output_audio_tokens: 2 }),
      record(globex.member.id, { id: 'chatcmpl-a1', org_id: globex.org.id, cost_nano: MAX_BIGINT }),
    ];
    const res = await ingest(t, ingestKey.key, records);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ object: 'usage.records.ingest', accepted: 3, duplicates: 0 });

    const rows = await t.dataSource.query(
      `SELECT org_id, id, api_key_id, team_id, user_id, project_id, model, input_tokens, output_tokens, input_cached_tokens,
              input_audio_tokens, output_audio_tokens, batch, service_tier, cost_nano, unpriced, extract(epoch FROM created_at)::int AS created_at
       FROM completion_records WHERE id IN ('chatcmpl-a1', 'chatcmpl-a2') ORDER BY org_id = $1 DESC, id`,
      [acme.org.id],
    );
    expect(rows).toEqual([
      {
        org_id: acme.org.id, id: 'chatcmpl-a1', api_key_id: acme.member.id, team_id: 'team-a', user_id: 'user_123', project_id: 'proj_1',
        model: 'meetkai:functionary-urdu-mini-pak', input_tokens: '100', output_tokens: '25', input_cached_tokens: '0', input_audio_tokens: '0',
        output_audio_tokens: '0', batch: true, service_tier: 'flex', cost_nano: '42', unpriced: false, created_at: T0 + HOUR,
      },
      {
        org_id: acme.org.id, id: 'chatcmpl-a2', api_key_id: acme.member.id, team_id: 'team-a', user_id: null, project_id: null,
        model: 'meetkai:functionary-urdu-mini-pak', input_tokens: '10', output_tokens: '25', input_cached_tokens: '4', input_audio_tokens: '1',
        output_audio_tokens: '2', batch: false, service_tier: null, cost_nano: '0', unpriced: true, created_at: T0 + HOUR,
      },
      {
        org_id: globex.org.id, id: 'chatcmpl-a1', api_key_id: globex.member.id, team_id: null, user_id: null, project_id: null,
        model: 'meetkai:functionary-urdu-mini-pak', input_tokens: '100', output_tokens: '25', input_cached_tokens: '0', input_audio_tokens: '0',
        output_audio_tokens: '0', batch: false, service_tier: null, cost_nano: MAX_BIGINT, unpriced: false, created_at: T0 + HOUR,
      },
    ]);
    // Rollup rows of the acme key (once the journal is folded): one per distinct dimension set, '' for missing values.
    await foldJournal(t);
    const day = await t.dataSource.query(
      `SELECT user_id, project_id, batch, service_tier, team_id, input_tokens, input_cached_tokens, num_model_requests, cost_nano, unpriced_requests
       FROM usage_rollups_day WHERE org_id = $1 ORDER BY user_id`,
      [acme.org.id],
    );
    expect(day).toEqual([
      { user_id: '', project_id: '', batch: false, service_tier: '', team_id: 'team-a', input_tokens: '10', input_cached_tokens: '4', num_model_requests: '1', cost_nano: '0', unpriced_requests: '1' },
      { user_id: 'user_123', project_id: 'proj_1', batch: true, service_tier: 'flex', team_id: 'team-a', input_tokens: '100', input_cached_tokens: '0', num_model_requests: '1', cost_nano: '42', unpriced_requests: '0' },
    ]);
  });

  it('counts re-sent and repeated records as duplicates and never adds them twice', async () => {
    const batch = [record(acme.member.id, { created_at: T0 + 2 * DAY }), record(acme.member.id, { created_at: T0 + 2 * DAY })];
    expect(await ingestOk(t, ingestKey.key, batch)).toEqual({ object: 'usage.records.ingest', accepted: 2, duplicates: 0 });
    const rollups = await tableRows(t, 'usage_rollups_minute');
    const fresh = record(acme.member.id, { created_at: T0 + 2 * DAY });
    expect(await ingestOk(t, ingestKey.key, [...batch, fresh, fresh])).toEqual({ object: 'usage.records.ingest', accepted: 1, duplicates: 3 });
    await foldJournal(t);
    const [sums] = await t.dataSource.query(
      `SELECT num_model_requests, input_tokens FROM usage_rollups_day WHERE org_id = $1 AND bucket_start = $2 AND user_id = ''`,
      [acme.org.id, new Date((T0 + 2 * DAY) * 1000)],
    );
    expect(sums).toEqual({ num_model_requests: '3', input_tokens: '300' });
    expect((await tableRows(t, 'usage_rollups_minute')).length).toBe(rollups.length); // same minute: updated, not added
    expect(await ingestOk(t, ingestKey.key, batch)).toEqual({ object: 'usage.records.ingest', accepted: 0, duplicates: 2 });
  });

  it('names every bad index and field in one 400, and writes nothing', async () => {
    const before = await Promise.all(['completion_records', ...ROLLUPS.map((r) => r.table)].map((x) => count(x)));
    const ok = record(acme.member.id);
    const now = Math.floor(Date.now() / 1000);
    const records = [
      ok,
      { ...record(acme.member.id), input_tokens: -1 },
      { ...record(acme.member.id), input_tokens: 5, input_cached_tokens: 6 },
      { ...record(acme.member.id), created_at: now + 2 * DAY },
      { ...record(acme.member.id), created_at: 946684799 },
      { ...record(acme.member.id), surprise: 1 },
      { ...record(acme.member.id), id: 'x'.repeat(201) },
      { ...record(acme.member.id), user_id: '*' },
      { ...record(acme.member.id), cost_nano: '-5' },
      { ...record(acme.member.id), model: undefined },
      { ...record(acme.member.id), output_tokens: 1.5, batch: 'yes' },
      { ...record(acme.member.id), cost_nano: '9223372036854775808' },
      'not a record',
    ];
    const res = await ingest(t, ingestKey.key, records);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ type: 'invalid_request_error', code: 'validation_failed', param: 'records[1].input_tokens' });
    expect(res.body.error.details.map((d: { param: string }) => d.param)).toEqual([
      'records[1].input_tokens',
      'records[2].input_cached_tokens',
      'records[3].created_at',
      'records[4].created_at',
      'records[5].surprise',
      'records[6].id',
      'records[7].user_id',
      'records[8].cost_nano',
      'records[9].model',
      'records[10].output_tokens',
      'records[10].batch',
      'records[11].cost_nano',
      'records[12]',
    ]);
    expect(res.body.error.details[1]).toEqual({ param: 'records[2].input_cached_tokens', message: 'must not be greater than input_tokens' });
    expect(res.body.error.details[2]).toEqual({ param: 'records[3].created_at', message: 'must not be more than one day in the future' });
    const after = await Promise.all(['completion_records', ...ROLLUPS.map((r) => r.table)].map((x) => count(x)));
    expect(after).toEqual(before);
  });

  it('takes a gzip-compressed batch (Content-Encoding: gzip); refuses other encodings with a 415 and a broken gzip with a 400, writing nothing', async () => {
    const post = (body: Buffer | string, encoding: string) =>
      fetch(`${t.baseUrl}/api/v1/llm/usage/records`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ingestKey.key}`, 'content-type': 'application/json', 'content-encoding': encoding },
        body,
      });
    const body = JSON.stringify({ records: [record(acme.member.id, { id: 'chatcmpl-gzip-1' }), record(acme.member.id, { id: 'chatcmpl-gzip-2' })] });
    const before = await count();
    const gzipped = await post(gzipSync(body), 'gzip');
    expect(gzipped.status).toBe(200);
    expect(await gzipped.json()).toEqual({ object: 'usage.records.ingest', accepted: 2, duplicates: 0 });
    expect(await count()).toBe(before + 2);

    const brotli = await post(JSON.stringify({ records: [record(acme.member.id, { id: 'chatcmpl-br' })] }), 'br');
    expect(brotli.status).toBe(415);
    expect(((await brotli.json()) as { error: unknown }).error).toMatchObject({ type: 'invalid_request_error', code: 'unsupported_media_type' });
    const broken = await post(Buffer.from(body), 'gzip');
    expect(broken.status).toBe(400);
    // Named like any other bad input (the documented 400 names every bad field in `details`).
    expect(((await broken.json()) as { error: unknown }).error).toMatchObject({
      code: 'validation_failed',
      details: [{ param: 'Content-Encoding', message: 'the body is not valid gzip data' }],
    });
    expect(await count()).toBe(before + 2);
  });

  it('ignores Content-Encoding where there is no body to undo (a GET, the forward-auth gate), and the process goes on', async () => {
    const headers = { authorization: `Bearer ${ingestKey.key}`, 'content-encoding': 'gzip' };
    // Each of these once ended the process: a gunzip of nothing failed with no one listening.
    expect((await fetch(`${t.baseUrl}/health/live`, { headers })).status).toBe(200);
    expect((await fetch(`${t.baseUrl}/api/v1/llm/budgets/authorize`, { headers })).status).toBe(200);
    // The gate gets a client's headers, not its body: what it says of that body is no concern of the gate.
    const forwarded = await fetch(`${t.baseUrl}/api/v1/llm/budgets/authorize`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: '{}' });
    expect(forwarded.status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await fetch(`${t.baseUrl}/health/live`)).status).toBe(200);
  });

  it('refuses a string with an unpaired surrogate (\\ud800), naming its field, and writes nothing; a pair (an emoji) is text', async () => {
    const before = await count();
    // JSON.stringify writes a lone surrogate as its escape, as a client's encoder would.
    const lone = await ingest(t, ingestKey.key, [record(acme.member.id, { id: 'chatcmpl-lone', project_id: 'proj_\ud800' })]);
    expect(lone.status).toBe(400);
    expect(lone.body.error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_json', param: 'project_id' });
    expect(await count()).toBe(before);
    const pair = await ingest(t, ingestKey.key, [record(acme.member.id, { id: 'chatcmpl-pair', project_id: 'proj_\ud83d\ude00' })]);
    expect(pair.body).toMatchObject({ accepted: 1 });
    const [row] = await t.dataSource.query(`SELECT project_id FROM completion_records WHERE org_id = $1 AND id = 'chatcmpl-pair'`, [acme.org.id]);
    expect(row.project_id).toBe('proj_\u{1F600}');
  });

  it('takes 1 to 1,000 records', async () => {
    const many = Array.from({ length: 1001 }, () => record(acme.member.id));
    const tooMany = await ingest(t, ingestKey.key, many);
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.error.details).toEqual([{ param: 'records', message: 'must contain no more than 1000 elements' }]);
    expect((await ingest(t, ingestKey.key, [])).body.error.param).toBe('records');
    expect((await t.post('/api/v1/llm/usage/records', {}, { key: ingestKey.key })).body.error.param).toBe('records');
    expect(await ingestOk(t, ingestKey.key, many.slice(0, 1000))).toEqual({ object: 'usage.records.ingest', accepted: 1000, duplicates: 0 });
  });

  it('refuses unknown keys and keys of another org than the stated one, naming each index, and writes nothing', async () => {
    const before = await count();
    const res = await ingest(t, ingestKey.key, [
      record(acme.member.id, { org_id: acme.org.id }),
      { ...record(acme.member.id), org_id: null },
      record('key_doesnotexist'),
      record(acme.member.id, { org_id: globex.org.id }),
      record(globex.member.id, { org_id: 'org_nope' }),
    ]);
    expect(res.status).toBe(400);
    expect(res.body.error.details).toEqual([
      { param: 'records[2].api_key_id', message: "unknown API key 'key_doesnotexist'" },
      { param: 'records[3].org_id', message: `does not match the org of API key '${acme.member.id}'` },
      { param: 'records[4].org_id', message: `does not match the org of API key '${globex.member.id}'` },
    ]);
    expect(await count()).toBe(before);
  });

  it('accepts records of a revoked key (the gateway may report late)', async () => {
    const key = await acme.make('member');
    expect((await t.delete(`/api/v1/api-keys/${key.id}`)).status).toBe(200);
    expect(await ingestOk(t, ingestKey.key, [record(key.id)])).toEqual({ object: 'usage.records.ingest', accepted: 1, duplicates: 0 });
  });

  it('refuses a batch whose sums would not fit a bigint, writing nothing', async () => {
    const before = await count();
    const res = await ingest(t, ingestKey.key, [
      record(globex.member.id, { cost_nano: MAX_BIGINT, created_at: T0 + 5 * DAY }),
      record(globex.member.id, { cost_nano: MAX_BIGINT, created_at: T0 + 5 * DAY }),
    ]);
    expect(res.status).toBe(400);
    expect(res.body.error.details).toEqual([{ param: 'records', message: 'the stored sums would exceed 2^63 − 1' }]);
    expect(await count()).toBe(before);
  });

  it('lets only ingest and cluster-admin keys write', async () => {
    for (const key of [acme.member.key, acme.orgAdmin.key]) {
      expect((await ingest(t, key, [record(acme.member.id)])).status).toBe(403);
    }
    expect((await ingest(t, t.adminKey, [record(acme.member.id)])).status).toBe(200);
    expect((await ingest(t, null as never, [record(acme.member.id)])).status).toBe(401);
  });

  it('reports, per org with new records, the keys and UTC days it touched (what the ingest workflow evaluates)', async () => {
    const service = t.app.get(UsageIngestService);
    const extra = await acme.make('member');
    const batch = [
      record(extra.id, { created_at: T0 + 7 * DAY + 5 }),
      record(acme.member.id, { created_at: T0 + 7 * DAY }),
      record(acme.member.id, { created_at: T0 + 9 * DAY - 1, user_id: 'end-user-2' }),
      record(acme.member.id, { created_at: T0 + 9 * DAY - 2, user_id: 'end-user-1' }),
      record(globex.member.id, { created_at: T0 + 8 * DAY }),
    ] as unknown as IngestRecordDto[];
    const result = await service.ingest(batch);
    const byOrg = (a: UsageTouched, b: UsageTouched) => (a.orgId < b.orgId ? -1 : 1);
    expect(result.accepted).toBe(5);
    expect([...result.touched].sort(byOrg)).toEqual(
      [
        { orgId: acme.org.id, apiKeyIds: [acme.member.id, extra.id].sort(), days: ['2024-01-08', '2024-01-09'], teamIds: ['team-a'], userIds: ['end-user-1', 'end-user-2'] },
        { orgId: globex.org.id, apiKeyIds: [globex.member.id], days: ['2024-01-09'], teamIds: [], userIds: [] },
      ].sort(byOrg),
    );
    // A batch of duplicates only touches nothing.
    expect((await service.ingest(batch)).touched).toEqual([]);
  });

  it('sums spend per org and key over whole days from the daily rollup', async () => {
    const key = await globex.make('member');
    const base = T0 + 20 * DAY;
    await ingestOk(t, ingestKey.key, [
      record(key.id, { created_at: base, cost_nano: 5, input_tokens: 10, output_tokens: 1 }),
      record(key.id, { created_at: base + DAY - 1, cost_nano: 7, input_tokens: 20, output_tokens: 2 }),
      record(globex.member.id, { created_at: base + DAY, cost_nano: 11, input_tokens: 30, output_tokens: 3 }),
    ]);
    const spend = t.app.get(UsageSpendService);
    const at = (s: number) => new Date(s * 1000);
    expect(await spend.spend({ orgId: globex.org.id, apiKeyId: key.id }, at(base), at(base + 2 * DAY))).toEqual({ costNano: 12n, tokens: 33n });
    expect(await spend.spend({ orgId: globex.org.id }, at(base), at(base + 2 * DAY))).toEqual({ costNano: 23n, tokens: 66n });
    expect(await spend.spend({ orgId: globex.org.id }, at(base + DAY), at(base + 2 * DAY))).toEqual({ costNano: 11n, tokens: 33n });
    expect(await spend.spend({ orgId: acme.org.id, apiKeyId: key.id }, at(base), at(base + 2 * DAY))).toEqual({ costNano: 0n, tokens: 0n });
    // Any whole seconds (a local day of a budget in a time zone): exact from finer rollups and raw edges.
    expect(await spend.spend({ orgId: globex.org.id }, at(base + 1), at(base + DAY))).toEqual({ costNano: 7n, tokens: 22n });
    expect(await spend.spend({ orgId: globex.org.id }, at(base), at(base + DAY - 1))).toEqual({ costNano: 5n, tokens: 11n });
    await expect(spend.spend({ orgId: globex.org.id }, new Date(base * 1000 + 1), at(base + DAY))).rejects.toThrow(RangeError);
  });
});

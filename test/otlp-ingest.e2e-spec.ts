import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
// The same official definitions the service decodes with: here to encode a request by hand.
import otlpRoot = require('@opentelemetry/otlp-transformer/build/src/generated/root');
import { decodeTraceRequest } from '../src/usage/otlp/otlp-codec';
import { OtlpIngestService } from '../src/usage/otlp/otlp-ingest.service';
import { countingTurns } from './helpers/event-loop-turns';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';

/**
 * OTLP/HTTP traces ingest fed by the real OpenTelemetry JS SDK: its protobuf and JSON exporters,
 * configured with nothing but the URL and an Authorization header, export GenAI spans (from a
 * plain Node process: test/helpers/otel-export.js).
 */
const PATH = '/api/v1/llm/usage/otlp/v1/traces';
const collector = (otlpRoot as any).opentelemetry.proto.collector.trace.v1;
const SUCCESS = 0; // ExportResultCode.SUCCESS

interface SpanSpec {
  name: string;
  attributes: Record<string, string | number | boolean>;
  /** Unix seconds of the span's end. */
  end: number;
}

interface SdkRun {
  spans: Array<{ traceId: string; spanId: string }>;
  exports: Array<{ exporter: string; code: number; error: string | null; warnings: string[] }>;
}

/** Makes the spans with the SDK (one tracer provider with `resource`) and exports them with each exporter in turn. */
async function exportWithSdk(
  url: string,
  key: string,
  resource: Record<string, string>,
  spans: SpanSpec[],
  exporters: string[],
  env: Record<string, string> = {},
): Promise<SdkRun> {
  const input = JSON.stringify({ url, authorization: `Bearer ${key}`, resource, spans, exporters });
  const { stdout } = await promisify(execFile)(process.execPath, [join(__dirname, 'helpers', 'otel-export.js'), input], {
    timeout: 60_000,
    env: { ...process.env, ...env },
  });
  return JSON.parse(stdout) as SdkRun;
}

describe('OTLP/HTTP traces ingest, fed by the OpenTelemetry JS SDK', () => {
  let t: TestApp;
  let ingestKey: string;

  beforeAll(async () => {
    t = await startTestApp();
    ingestKey = (await createSystemKey(t, 'ingest')).key;
  });
  afterAll(async () => {
    await t.close();
  });

  it('stores GenAI spans (current and older attribute names) so the usage report equals their sums; ignores spans without usage; rejects the rest in partialSuccess; re-exports change nothing', async () => {
    const acme = await seedOrg(t, 'Otel Acme');
    const hour = Math.floor(Date.now() / 1000 / 3600) * 3600 - 3 * 3600;
    const specs: SpanSpec[] = [
      {
        name: 'chat gpt-4o-mini',
        end: hour + 60,
        attributes: {
          'gen_ai.operation.name': 'chat',
          'gen_ai.response.id': `chatcmpl-otel-${hour}`,
          'gen_ai.request.model': 'gpt-4o-mini-requested',
          'gen_ai.response.model': 'gpt-4o-mini',
          'gen_ai.usage.input_tokens': 1200,
          'gen_ai.usage.output_tokens': 300,
          'gen_ai.usage.cache_read.input_tokens': 200,
          'user.id': 'user_1',
        },
      },
      {
        // Older names, no response id (trace id + span id), the key on the span over the resource's.
        name: 'completion',
        end: hour + 120,
        attributes: {
          'gen_ai.request.model': 'gpt-4o',
          'gen_ai.usage.prompt_tokens': 50,
          'gen_ai.usage.completion_tokens': 7,
          'tally.api_key_id': acme.orgAdmin.id,
          'enduser.id': 'user_2',
        },
      },
      {
        name: 'chat gpt-4o-mini',
        end: hour + 180,
        attributes: { 'gen_ai.response.model': 'gpt-4o-mini', 'gen_ai.usage.input_tokens': 10, 'gen_ai.usage.output_tokens': 5 },
      },
      // Not a model call: ignored, not rejected.
      { name: 'GET /v1/models', end: hour + 200, attributes: { 'http.request.method': 'GET', 'gen_ai.request.model': 'gpt-4o' } },
      // Usage that cannot be stored: an unknown key, and a bad value.
      {
        name: 'chat unknown key',
        end: hour + 240,
        attributes: { 'gen_ai.response.model': 'gpt-4o', 'gen_ai.usage.input_tokens': 999, 'gen_ai.usage.output_tokens': 1, 'tally.api_key_id': 'key_doesnotexist000000000000' },
      },
      {
        name: 'chat bad value',
        end: hour + 300,
        attributes: { 'gen_ai.response.model': 'gpt-4o', 'gen_ai.usage.input_tokens': -5, 'gen_ai.usage.output_tokens': 1 },
      },
    ];
    const resource = { 'service.name': 'llm-gateway', 'tally.api_key_id': acme.member.id };
    // The protobuf exporter, then the same spans again through the OTLP/JSON exporter and gzip-compressed protobuf.
    const run = await exportWithSdk(t.baseUrl + PATH, ingestKey, resource, specs, ['proto', 'json', 'proto-gzip']);
    const spans = run.spans;
    expect(spans).toHaveLength(6);
    for (const result of run.exports) {
      expect(result).toMatchObject({ code: SUCCESS, error: null });
      const partial = result.warnings.find((w) => w.startsWith('Received Partial Success response:'));
      expect(partial).toBeDefined();
      expect(Number(JSON.parse(partial!.slice(partial!.indexOf('{'))).rejectedSpans)).toBe(2);
      expect(partial).toContain("unknown API key 'key_doesnotexist000000000000'");
      expect(partial).toContain('gen_ai.usage.input_tokens must be a non-negative integer');
    }
    expect(run.exports.map((e) => e.exporter)).toEqual(['proto', 'json', 'proto-gzip']);

    const report = async () =>
      (
        await t.get(`/api/v1/llm/usage/completions?start_time=${hour}&end_time=${hour + 3600}&bucket_width=1h&group_by=api_key_id,model,user_id&org_id=${acme.org.id}`)
      ).body.data[0].results.sort((a: { model: string }, b: { model: string }) => a.model.localeCompare(b.model));
    const expected = [
      { api_key_id: acme.orgAdmin.id, model: 'gpt-4o', user_id: 'user_2', input_tokens: 50, output_tokens: 7, input_cached_tokens: 0, num_model_requests: 1 },
      { api_key_id: acme.member.id, model: 'gpt-4o-mini', user_id: 'user_1', input_tokens: 1200, output_tokens: 300, input_cached_tokens: 200, num_model_requests: 1 },
      { api_key_id: acme.member.id, model: 'gpt-4o-mini', user_id: null, input_tokens: 10, output_tokens: 5, input_cached_tokens: 0, num_model_requests: 1 },
    ];
    const summarise = (rows: Array<Record<string, unknown>>) =>
      rows
        .map((r) => ({
          api_key_id: r.api_key_id,
          model: r.model,
          user_id: r.user_id,
          input_tokens: r.input_tokens,
          output_tokens: r.output_tokens,
          input_cached_tokens: r.input_cached_tokens,
          num_model_requests: r.num_model_requests,
        }))
        .sort((a, b) => `${a.model}${a.user_id}`.localeCompare(`${b.model}${b.user_id}`));
    // Three exports of the same spans, one set of records: the report is the sums of the spans' attributes.
    expect(summarise(await report())).toEqual(summarise(expected));
    const stored = await t.dataSource.query('SELECT id, created_at FROM completion_records WHERE org_id = $1 ORDER BY created_at', [acme.org.id]);
    expect(stored.map((r: { id: string }) => r.id)).toEqual([
      `chatcmpl-otel-${hour}`,
      spans[1].traceId + spans[1].spanId,
      spans[2].traceId + spans[2].spanId,
    ]);
    expect(stored.map((r: { created_at: Date }) => r.created_at.getTime() / 1000)).toEqual([hour + 60, hour + 120, hour + 180]);

    expect(await t.dataSource.query('SELECT count(*)::int AS n FROM completion_records WHERE org_id = $1', [acme.org.id])).toEqual([{ n: 3 }]);
  });

  it("is configured by the README's environment variables alone", async () => {
    const acme = await seedOrg(t, 'Otel Env');
    const end = Math.floor(Date.now() / 1000) - 60;
    const spans: SpanSpec[] = [{ name: 'chat', end, attributes: { 'gen_ai.request.model': 'm', 'gen_ai.usage.input_tokens': 3, 'gen_ai.usage.output_tokens': 4 } }];
    const run = await exportWithSdk('unused', 'unused', { 'tally.api_key_id': acme.member.id }, spans, ['proto-env'], {
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: t.baseUrl + PATH,
      OTEL_EXPORTER_OTLP_TRACES_HEADERS: `Authorization=Bearer ${ingestKey}`,
    });
    expect(run.exports).toEqual([{ exporter: 'proto-env', code: SUCCESS, error: null, warnings: [] }]);
    expect(await t.dataSource.query('SELECT input_tokens::int AS i, output_tokens::int AS o FROM completion_records WHERE org_id = $1', [acme.org.id])).toEqual([
      { i: 3, o: 4 },
    ]);
  });

  it('answers an ExportTraceServiceResponse in the request encoding: protobuf, JSON, gzip', async () => {
    const acme = await seedOrg(t, 'Otel Direct');
    const end = (Math.floor(Date.now() / 1000) - 600).toString() + '000000000';
    const request = (keyId: string, id: string) => ({
      resourceSpans: [
        {
          resource: { attributes: [{ key: 'tally.api_key_id', value: { stringValue: keyId } }] },
          scopeSpans: [
            {
              spans: [
                {
                  traceId: '5b8efff798038103d269b633813fc60c',
                  spanId: 'eee19b7ec3c1b174',
                  name: 'chat',
                  startTimeUnixNano: end,
                  endTimeUnixNano: end,
                  attributes: [
                    { key: 'gen_ai.response.id', value: { stringValue: id } },
                    { key: 'gen_ai.response.model', value: { stringValue: 'gpt-4o-mini' } },
                    { key: 'gen_ai.usage.input_tokens', value: { intValue: '40' } },
                    { key: 'gen_ai.usage.output_tokens', value: { intValue: 2 } },
                  ],
                },
              ],
            },
          ],
        },
      ],
    });
    const post = (body: BodyInit, headers: Record<string, string>, key = ingestKey) =>
      fetch(t.baseUrl + PATH, { method: 'POST', body, headers: { authorization: `Bearer ${key}`, ...headers } });

    // OTLP/JSON: {} when everything is stored.
    const ok = await post(JSON.stringify(request(acme.member.id, 'direct-1')), { 'content-type': 'application/json' });
    expect([ok.status, ok.headers.get('content-type'), await ok.json()]).toEqual([200, 'application/json; charset=utf-8', {}]);

    // gzip JSON with an unknown key: the span comes back in partialSuccess.
    const rejected = await post(gzipSync(JSON.stringify(request('key_nope00000000000000000000', 'direct-2'))), {
      'content-type': 'application/json',
      'content-encoding': 'gzip',
    });
    expect(rejected.status).toBe(200);
    const body = (await rejected.json()) as { partialSuccess: { rejectedSpans: number; errorMessage: string } };
    expect(body.partialSuccess.rejectedSpans).toBe(1);
    expect(body.partialSuccess.errorMessage).toContain("span 5b8efff798038103d269b633813fc60c/eee19b7ec3c1b174: api_key_id unknown API key 'key_nope00000000000000000000'");

    // Protobuf in, protobuf out.
    const Request = collector.ExportTraceServiceRequest;
    const Response = collector.ExportTraceServiceResponse;
    const json = request('key_nope00000000000000000000', 'direct-3');
    const span = json.resourceSpans[0].scopeSpans[0].spans[0] as Record<string, unknown>;
    span.traceId = Buffer.from(span.traceId as string, 'hex').toString('base64');
    span.spanId = Buffer.from(span.spanId as string, 'hex').toString('base64');
    const bytes = Request.encode(Request.fromObject(json)).finish();
    const proto = await post(bytes, { 'content-type': 'application/x-protobuf' });
    expect([proto.status, proto.headers.get('content-type')]).toEqual([200, 'application/x-protobuf']);
    const decoded = Response.toObject(Response.decode(new Uint8Array(await proto.arrayBuffer())), { longs: Number });
    expect(decoded.partialSuccess.rejectedSpans).toBe(1);
    expect(decoded.partialSuccess.errorMessage).toContain('unknown API key');

    expect(await t.dataSource.query('SELECT id, input_tokens::int AS i, output_tokens::int AS o FROM completion_records WHERE org_id = $1', [acme.org.id])).toEqual([
      { id: 'direct-1', i: 40, o: 2 },
    ]);
  });

  it('rejects a span whose token count is set but unreadable (never counts it as 0); stores spans whose unread text is cut mid-emoji', async () => {
    const acme = await seedOrg(t, 'Otel Values');
    const end = (Math.floor(Date.now() / 1000) - 600).toString() + '000000000';
    const spanOf = (id: string, input: unknown, extra: unknown[] = []) => ({
      traceId: '6b8efff798038103d269b633813fc60c',
      spanId: Buffer.from(id.padEnd(8, '_')).toString('hex').slice(0, 16),
      name: 'chat',
      startTimeUnixNano: end,
      endTimeUnixNano: end,
      attributes: [
        { key: 'gen_ai.response.id', value: { stringValue: id } },
        { key: 'gen_ai.response.model', value: { stringValue: 'gpt-4o-mini' } },
        { key: 'gen_ai.usage.input_tokens', value: input },
        { key: 'gen_ai.usage.output_tokens', value: { intValue: '5' } },
        ...extra,
      ],
    });
    const bad = [{ intValue: 10.5 }, { intValue: '123456789012345678901' }, { intValue: 12345678901234567 }, null, { arrayValue: { values: [] } }];
    const spans = [
      ...bad.map((value, i) => spanOf(`bad-${i}`, value)),
      spanOf('double-string', { doubleValue: '12' }),
      // Prompt text an instrumentation cut inside a surrogate pair: not read, not a reason to lose the export.
      spanOf('cut-emoji', { intValue: '7' }, [{ key: 'gen_ai.prompt.0.content', value: { stringValue: 'hello 😀'.slice(0, 7) } }]),
    ];
    const body = JSON.stringify({ resourceSpans: [{ resource: { attributes: [{ key: 'tally.api_key_id', value: { stringValue: acme.member.id } }] }, scopeSpans: [{ spans }] }] });
    const res = await fetch(t.baseUrl + PATH, { method: 'POST', body, headers: { authorization: `Bearer ${ingestKey}`, 'content-type': 'application/json' } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { partialSuccess: { rejectedSpans: number } }).partialSuccess.rejectedSpans).toBe(bad.length);
    expect(await t.dataSource.query('SELECT id, input_tokens::int AS i FROM completion_records WHERE org_id = $1 ORDER BY id', [acme.org.id])).toEqual([
      { id: 'cut-emoji', i: 7 },
      { id: 'double-string', i: 12 },
    ]);
  });

  it('reads OTLP/JSON as proto3 JSON allows: 64-bit integers as JSON numbers, attribute values nested deeper than other bodies may, an integer end user', async () => {
    const acme = await seedOrg(t, 'Otel Json Forms');
    const seconds = Math.floor(Date.now() / 1000) - 900;
    // A nested kvlist of arrays (a structured message list): 17+ levels with the envelope.
    let nested: unknown = { stringValue: 'deep' };
    for (let i = 0; i < 6; i++) nested = { kvlistValue: { values: [{ key: `k${i}`, value: { arrayValue: { values: [nested] } } }] } };
    // Written by hand: the number's 19 digits must reach the service as sent.
    const body = `{"resourceSpans":[{"resource":{"attributes":[{"key":"tally.api_key_id","value":{"stringValue":"${acme.member.id}"}}]},"scopeSpans":[{"spans":[{
      "traceId":"7b8efff798038103d269b633813fc60c","spanId":"00f067aa0ba902b7","name":"chat",
      "startTimeUnixNano":${seconds}000000000,"endTimeUnixNano":${seconds}999999999,
      "attributes":[
        {"key":"gen_ai.response.id","value":{"stringValue":"json-forms-1"}},
        {"key":"gen_ai.response.model","value":{"stringValue":"gpt-4o-mini"}},
        {"key":"gen_ai.usage.input_tokens","value":{"intValue":40}},
        {"key":"gen_ai.usage.output_tokens","value":{"intValue":"2"}},
        {"key":"user.id","value":{"intValue":4242}},
        {"key":"enduser.id","value":{"stringValue":"bob"}},
        {"key":"gen_ai.input.messages","value":${JSON.stringify(nested)}}]}]}]}]}`;
    const res = await fetch(t.baseUrl + PATH, { method: 'POST', body, headers: { authorization: `Bearer ${ingestKey}`, 'content-type': 'application/json' } });
    expect([res.status, await res.json()]).toEqual([200, {}]);
    expect(await t.dataSource.query('SELECT id, user_id, extract(epoch FROM created_at)::bigint::text AS at FROM completion_records WHERE org_id = $1', [acme.org.id])).toEqual([
      { id: 'json-forms-1', user_id: '4242', at: String(seconds) },
    ]);
  });

  it('lets other requests run while it maps and validates a large export', async () => {
    // Spans with usage that cannot be stored (no model): mapped and rejected without a database
    // round trip, so any turn of the event loop before the answer is one the service gave away.
    const spans = Array.from({ length: 1_000 }, (_v, i) => ({
      traceId: '8b8efff798038103d269b633813fc60c',
      spanId: i.toString(16).padStart(16, '0'),
      name: 'chat',
      endTimeUnixNano: '1796327322000000000',
      attributes: [{ key: 'gen_ai.usage.input_tokens', value: { intValue: '1' } }],
    }));
    const service = t.app.get(OtlpIngestService);
    const { result, turns } = await countingTurns(async () => service.exportSpans(await decodeTraceRequest({ resourceSpans: [{ scopeSpans: [{ spans }] }] }, 'json')));
    expect(result.rejectedSpans).toBe(1_000);
    expect(turns).toBeGreaterThanOrEqual(3);
  });

  it('refuses malformed bodies, other content types and encodings, and keys that may not ingest', async () => {
    const acme = await seedOrg(t, 'Otel Errors');
    const post = (body: BodyInit, headers: Record<string, string>, key = ingestKey) =>
      fetch(t.baseUrl + PATH, { method: 'POST', body, headers: { authorization: `Bearer ${key}`, ...headers } });
    const status = async (res: Promise<Response>) => {
      const r = await res;
      return [r.status, ((await r.json()) as { error?: { code: string } }).error?.code];
    };
    expect(await status(post(Buffer.from([0x0a, 0xff, 0xff, 0xff]), { 'content-type': 'application/x-protobuf' }))).toEqual([400, 'validation_failed']);
    expect(await status(post(JSON.stringify({ resourceSpans: {} }), { 'content-type': 'application/json' }))).toEqual([400, 'validation_failed']);
    expect(await status(post(Buffer.from('not gzip'), { 'content-type': 'application/json', 'content-encoding': 'gzip' }))).toEqual([400, expect.any(String)]);
    expect(await status(post('{}', { 'content-type': 'application/json', 'content-encoding': 'br' }))).toEqual([415, 'unsupported_media_type']);
    // A small gzip body that inflates past BODY_LIMIT_BYTES: the limit holds for the inflated bytes.
    const bomb = gzipSync(Buffer.alloc(t.config.bodyLimitBytes + 1024, 0x20));
    expect(bomb.length).toBeLessThan(100_000);
    expect(await status(post(bomb, { 'content-type': 'application/json', 'content-encoding': 'gzip' }))).toEqual([413, 'payload_too_large']);
    expect(await status(post('x', { 'content-type': 'text/plain' }))).toEqual([415, 'unsupported_media_type']);
    expect(await status(post('{}', { 'content-type': 'application/json' }, acme.member.key))).toEqual([403, 'forbidden']);
    // Protobuf stays refused on the JSON endpoints.
    expect((await fetch(t.baseUrl + '/api/v1/llm/usage/records', { method: 'POST', body: Buffer.from([1]), headers: { authorization: `Bearer ${ingestKey}`, 'content-type': 'application/x-protobuf' } })).status).toBe(415);
  });
});

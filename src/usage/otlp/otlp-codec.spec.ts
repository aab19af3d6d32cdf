import { resolve } from 'node:path';
import { countingTurns } from '../../../test/helpers/event-loop-turns';
import { inFreshProcess } from '../../../test/helpers/fresh-process';
import { parseJsonObject } from '../../common/http-guards';
import { decodeTraceRequest, INVALID_VALUE, OtlpSpan } from './otlp-codec';

/** A protobuf varint. */
function varint(n: number): Buffer {
  const out: number[] = [];
  for (; n >= 0x80; n = Math.floor(n / 128)) out.push((n % 128) | 0x80);
  out.push(n);
  return Buffer.from(out);
}

interface ProtoType {
  fromObject(object: object): object;
  encode(message: object): { finish(): Uint8Array };
}

/** protobufjs' own encoder of the official definitions, the reference the codec's partial decoder must agree with. */
function encodeRequest(object: object): Buffer {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const root = require('@opentelemetry/otlp-transformer/build/src/generated/root');
  const type = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest as ProtoType;
  return Buffer.from(type.encode(type.fromObject(object)).finish());
}

const hex = (bytes: number, fill: number) => Buffer.alloc(bytes, fill).toString('hex');
const kv = (key: string, value: object) => ({ key, value });

/** A request in OTLP/JSON form (ids in hex); `asProtobufObject` turns its ids into bytes for protobufjs. */
function request(spansPerScope: number) {
  const span = (n: number) => ({
    traceId: hex(16, n % 256),
    spanId: hex(8, (n + 1) % 256),
    name: `chat ${n}`,
    startTimeUnixNano: '1796327321000000000',
    endTimeUnixNano: String(1796327322000000000n + BigInt(n)),
    attributes: [
      kv('gen_ai.usage.input_tokens', { intValue: String(n) }),
      kv('gen_ai.request.model', { stringValue: 'm' }),
      kv('ratio', { doubleValue: 0.5 }),
      kv('flag', { boolValue: true }),
      kv('negative', { intValue: '-5' }),
      kv('list', { arrayValue: { values: [{ stringValue: 'a' }] } }),
      kv('map', { kvlistValue: { values: [kv('k', { stringValue: 'v' })] } }),
    ],
    events: [{ name: 'e', timeUnixNano: '1' }],
  });
  let n = 0;
  const scope = () => ({ scope: { name: 'lib', version: '1' }, spans: Array.from({ length: spansPerScope }, () => span(n++)), schemaUrl: 'u' });
  return {
    resourceSpans: [
      { resource: { attributes: [kv('service.name', { stringValue: 'a' }), kv('tally.api_key_id', { stringValue: 'key_a' })] }, scopeSpans: [scope(), scope()], schemaUrl: 's' },
      { resource: { attributes: [kv('service.name', { stringValue: 'b' })] }, scopeSpans: [scope()] },
    ],
  };
}

function asProtobufObject(json: ReturnType<typeof request>): object {
  return {
    resourceSpans: json.resourceSpans.map((rs) => ({
      ...rs,
      scopeSpans: rs.scopeSpans.map((ss) => ({ ...ss, spans: ss.spans.map((sp) => ({ ...sp, traceId: Buffer.from(sp.traceId, 'hex'), spanId: Buffer.from(sp.spanId, 'hex') })) })),
    })),
  };
}

const decode = async (body: unknown, encoding: 'json' | 'protobuf'): Promise<OtlpSpan[]> => [...(await decodeTraceRequest(body, encoding))];

describe('OTLP codec', () => {
  it('decodes protobuf a span at a time into what the same request in OTLP/JSON gives', async () => {
    const json = request(300);
    const fromProtobuf = await decode(encodeRequest(asProtobufObject(json)), 'protobuf');
    expect(fromProtobuf).toHaveLength(900);
    expect(fromProtobuf).toEqual(await decode(json, 'json'));
    expect(fromProtobuf[899]).toMatchObject({ traceId: hex(16, 899 % 256), endTimeUnixNano: 1796327322000000899n, name: 'chat 899' });
    expect(fromProtobuf[899].resourceAttributes.get('service.name')).toBe('b');
    expect(fromProtobuf[0].attributes.get('gen_ai.usage.input_tokens')).toBe(0n);
  });

  it('lets other work run while it decodes a large export (it was one piece of seconds at 25,000 spans)', async () => {
    const bytes = encodeRequest(asProtobufObject(request(400)));
    const { result: spans, turns } = await countingTurns(() => decode(bytes, 'protobuf'));
    expect(spans).toHaveLength(1200);
    // One turn at least per 256 spans decoded.
    expect(turns).toBeGreaterThanOrEqual(4);
  });

  it('yields on messages without spans too: a tiny gzip body can hold millions of empty ones', async () => {
    // Two ResourceSpans of 100,000 empty ScopeSpans each (field 2, length 0).
    const scopes = Buffer.from('1200'.repeat(100_000), 'hex');
    const resource = Buffer.concat([Buffer.from([0x0a]), varint(scopes.length), scopes]);
    const bytes = Buffer.concat([resource, resource]);
    const { result, turns } = await countingTurns(() => decode(bytes, 'protobuf'));
    expect(result).toEqual([]);
    expect(turns).toBeGreaterThanOrEqual(4);
  });

  it('yields inside a resource or a span however they nest (unknown fields, one attribute value, events)', async () => {
    const field = (n: number, bytes: Buffer) => Buffer.concat([varint(n * 8 + 2), varint(bytes.length), bytes]);
    const many = (n: number, bytes: Buffer) => Buffer.concat(Array.from({ length: n }, () => bytes));
    const resource = many(200_000, field(7, Buffer.alloc(0))); // a Resource of 200,000 fields it does not define
    // A span with one attribute whose map holds 200,000 entries, and 200,000 empty events (field 11).
    const bigMap = field(2, field(6, many(200_000, field(1, Buffer.alloc(0)))));
    const span = Buffer.concat([field(9, Buffer.concat([field(1, Buffer.from('m')), bigMap])), many(200_000, field(11, Buffer.alloc(0)))]);
    for (const body of [field(1, field(1, resource)), field(1, field(2, field(2, span)))]) {
      const { turns } = await countingTurns(() => decode(body, 'protobuf'));
      expect(turns).toBeGreaterThanOrEqual(4);
    }
  });

  it('refuses a span or a resource with more than 1,000 attributes (a map of them would be built in one piece)', async () => {
    const field = (n: number, bytes: Buffer) => Buffer.concat([varint(n * 8 + 2), varint(bytes.length), bytes]);
    const keyValues = (n: number) => Buffer.concat(Array.from({ length: n }, (_v, i) => field(9, field(1, Buffer.from(`k${i}`)))));
    const body = (n: number) => field(1, field(2, field(2, keyValues(n))));
    expect(await decode(body(1_000), 'protobuf')).toHaveLength(1);
    await expect(decode(body(1_001), 'protobuf')).rejects.toMatchObject({ status: 400 });
    const json = { resourceSpans: [{ scopeSpans: [{ spans: [{ attributes: Array.from({ length: 1_001 }, (_v, i) => kv(`k${i}`, { stringValue: 'v' })) }] }] }] };
    await expect(decode(json, 'json')).rejects.toMatchObject({ status: 400 });
  });

  it('reads 64-bit integers sent as JSON numbers in any exact form, exponents included', async () => {
    const body = parseJsonObject(`{"resourceSpans":[{"scopeSpans":[{"spans":[
      {"traceId":"aa","spanId":"bb","endTimeUnixNano":1.7e18,"attributes":[{"key":"a","value":{"intValue":1.5e3}},{"key":"b","value":{"intValue":12345678901234567890123}},{"key":"c","value":{"intValue":1.5}}]},
      {"traceId":"aa","spanId":"cc","endTimeUnixNano":1796327322000000001,"attributes":[{"key":"a","value":{"intValue":-9007199254740993}}]}]}]}]}`);
    const [first, second] = await decode(body, 'json');
    expect(first.endTimeUnixNano).toBe(1_700_000_000_000_000_000n);
    expect([...first.attributes.values()]).toEqual([1500n, INVALID_VALUE, INVALID_VALUE]);
    expect(second.endTimeUnixNano).toBe(1_796_327_322_000_000_001n);
    expect(second.attributes.get('a')).toBe(-9_007_199_254_740_993n);
    await expect(decode(parseJsonObject(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"endTimeUnixNano":1.5e0}]}]}]}`), 'json')).rejects.toMatchObject({ status: 400 });
  });

  it('refuses a truncated or malformed protobuf body with a 400', async () => {
    const bytes = encodeRequest(asProtobufObject(request(2)));
    for (const body of [bytes.subarray(0, bytes.length - 3), Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), Buffer.from([0x0b])]) {
      await expect(decode(body, 'protobuf')).rejects.toMatchObject({ status: 400 });
    }
  });
});

describe('OTLP codec loading', () => {
  it('loads the protobuf definitions on the first protobuf use, not with the module (nor for OTLP/JSON)', () => {
    const script = `
      const codec = require(${JSON.stringify(resolve(__dirname, 'otlp-codec.ts'))});
      const loaded = () => Object.keys(require.cache).some((k) => k.includes('otlp-transformer/build/src/generated/root'));
      const atLoad = loaded();
      codec.decodeTraceRequest({ resourceSpans: [] }, 'json');
      const afterJson = loaded();
      const response = codec.encodeTraceResponse({ rejectedSpans: 1, errorMessage: 'x' }, 'protobuf');
      process.stdout.write(JSON.stringify({ atLoad, afterJson, afterProtobuf: loaded(), bytes: response.length }));
    `;
    const out = inFreshProcess(script) as { bytes: number };
    expect(out).toEqual({ atLoad: false, afterJson: false, afterProtobuf: true, bytes: expect.any(Number) });
    expect(out.bytes).toBeGreaterThan(0);
  });
});

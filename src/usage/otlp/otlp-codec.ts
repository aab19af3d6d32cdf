import { setImmediate as nextTurn } from 'node:timers/promises';
import { AppException } from '../../common/errors';
import { numberSource } from '../../common/exact-json';
import { protobufFields } from './protobuf-fields';

/** An attribute value as the mapping reads it; arrays, maps and bytes are `undefined` (not used). */
/**
 * An attribute that is set but holds no value this service reads exactly (an integer beyond int64
 * or 2^53 as a JSON number, a fraction as intValue, null, an array...): never read as absent, so a
 * token count given so rejects its span instead of counting as 0.
 */
export const INVALID_VALUE = Object.freeze({ invalid: true as const });

export type AttributeValue = string | bigint | number | boolean | typeof INVALID_VALUE | undefined;

/** One span with what the GenAI mapping needs: ids in hex, times in nanoseconds, attributes by key. */
export interface OtlpSpan {
  traceId: string;
  spanId: string;
  name: string;
  endTimeUnixNano: bigint;
  attributes: Map<string, AttributeValue>;
  resourceAttributes: Map<string, AttributeValue>;
}

export interface OtlpExportResult {
  rejectedSpans: number;
  errorMessage: string;
}

export type OtlpEncoding = 'protobuf' | 'json';

interface MessageType {
  encode(message: object): { finish(): Uint8Array };
  fromObject(object: object): object;
}

type TraceMessages = Record<'ExportTraceServiceResponse', MessageType>;
let traceMessages: TraceMessages | undefined;

interface Root {
  opentelemetry: { proto: { collector: { trace: { v1: { ExportTraceServiceResponse: MessageType } } } } };
}

/**
 * The official OTLP definitions, compiled by OpenTelemetry into a protobufjs root and shipped in
 * @opentelemetry/otlp-transformer up to 0.216; nothing is copied here. Used to encode the
 * response (requests are read by {@link TraceRequestReader}); loaded on the first protobuf answer:
 * the root holds ~3.5 MB of the heap, which every API process would otherwise carry.
 */
function messages(): TraceMessages {
  if (!traceMessages) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { proto } = (require('@opentelemetry/otlp-transformer/build/src/generated/root') as Root).opentelemetry;
    traceMessages = { ExportTraceServiceResponse: proto.collector.trace.v1.ExportTraceServiceResponse };
  }
  return traceMessages;
}

/**
 * Spans decoded between two turns of the event loop. Decoding costs ~50 µs a span and an export
 * may hold tens of thousands (a collector's default batch is 8,192): in one piece it held every
 * other request, the gate's and the check's included, for seconds.
 */
const SPANS_PER_TURN = 256;
/** What decoding a span costs against visiting any other field (~50 µs against well under 1 µs). */
const SPAN_WORK = 100;

/**
 * Decodes an ExportTraceServiceRequest (protobuf bytes or OTLP/JSON) into its spans, read as they
 * are iterated (a malformed part then throws). A malformed body is a 400.
 */
export async function decodeTraceRequest(body: Buffer | unknown, encoding: OtlpEncoding): Promise<Iterable<OtlpSpan>> {
  if (encoding === 'protobuf') {
    let object: Record<string, unknown>;
    try {
      object = await new TraceRequestReader().request(body as Buffer);
    } catch (err) {
      throw invalid(`the body is not a protobuf ExportTraceServiceRequest (${(err as Error).message})`);
    }
    return spansOf(object, 'hex');
  }
  return spansOf(body, 'hex');
}

/**
 * An ExportTraceServiceRequest read by hand as the plain object of OTLP/JSON (ids in hex), with
 * only what the mapping reads: a span's ids, name, end time and attributes, a resource's
 * attributes (field numbers from trace_service.proto, trace.proto, resource.proto and
 * common.proto). Nothing else is decoded: events, links and nested attribute values (arrays,
 * maps) are skipped by their length, so no part of a body, however it nests, is decoded in one
 * piece; a turn of the event loop is given every SPANS_PER_TURN × SPAN_WORK fields read.
 */
class TraceRequestReader {
  private work = 0;

  async request(bytes: Uint8Array): Promise<Record<string, unknown>> {
    const resourceSpans: Array<{ resource: { attributes: unknown[] }; scopeSpans: Array<{ spans: unknown[] }> }> = [];
    for (const f of protobufFields(bytes)) {
      await this.did(1);
      if (f.field !== 1 || f.wire !== 2) continue; // ExportTraceServiceRequest.resource_spans
      const entry: (typeof resourceSpans)[number] = { resource: { attributes: [] }, scopeSpans: [] };
      for (const part of protobufFields(f.bytes)) {
        await this.did(1);
        if (part.wire !== 2) continue;
        if (part.field === 1) entry.resource = { attributes: await this.attributesOf(part.bytes, 1) }; // ResourceSpans.resource
        if (part.field !== 2) continue; // ResourceSpans.scope_spans
        const spans: unknown[] = [];
        for (const s of protobufFields(part.bytes)) {
          await this.did(1);
          if (s.field === 2 && s.wire === 2) spans.push(await this.span(s.bytes)); // ScopeSpans.spans
        }
        // Scopes and resources without spans hold nothing to meter: not kept for the mapping to walk.
        if (spans.length > 0) entry.scopeSpans.push({ spans });
      }
      if (entry.scopeSpans.length > 0) resourceSpans.push(entry);
    }
    return { resourceSpans };
  }

  private async span(bytes: Uint8Array): Promise<Record<string, unknown>> {
    await this.did(SPAN_WORK);
    const span: Record<string, unknown> = { attributes: await this.attributesOf(bytes, 9) };
    for (const f of protobufFields(bytes)) {
      await this.did(1);
      if (f.wire === 2 && f.field === 1) span.traceId = hex(f.bytes);
      else if (f.wire === 2 && f.field === 2) span.spanId = hex(f.bytes);
      else if (f.wire === 2 && f.field === 5) span.name = utf8(f.bytes);
      else if (f.wire === 1 && f.field === 8) span.endTimeUnixNano = fixed64(f.bytes).toString();
    }
    return span;
  }

  /** The KeyValues in field `field` of a message (Span.attributes is 9, Resource.attributes 1). */
  private async attributesOf(bytes: Uint8Array, field: number): Promise<unknown[]> {
    const attributes: unknown[] = [];
    for (const f of protobufFields(bytes)) {
      await this.did(1);
      if (f.field !== field || f.wire !== 2) continue;
      let key = '';
      let value: Record<string, unknown> = {};
      for (const kv of protobufFields(f.bytes)) {
        await this.did(1);
        if (kv.field === 1 && kv.wire === 2) key = utf8(kv.bytes);
        if (kv.field === 2 && kv.wire === 2) value = await this.anyValue(kv.bytes);
      }
      attributes.push({ key, value });
      if (attributes.length > MAX_ATTRIBUTES) throw new Error(`a span or resource holds more than ${MAX_ATTRIBUTES} attributes`);
    }
    return attributes;
  }

  /** An AnyValue as OTLP/JSON writes it (the last value set wins, as protobuf's oneof); arrays and maps are not read. */
  private async anyValue(bytes: Uint8Array): Promise<Record<string, unknown>> {
    let value: Record<string, unknown> = {};
    for (const f of protobufFields(bytes)) {
      await this.did(1);
      if (f.wire === 2 && f.field === 1) value = { stringValue: utf8(f.bytes) };
      else if (f.wire === 0 && f.field === 2) value = { boolValue: f.varint !== 0n };
      else if (f.wire === 0 && f.field === 3) value = { intValue: BigInt.asIntN(64, f.varint).toString() };
      else if (f.wire === 1 && f.field === 4) value = { doubleValue: Buffer.from(f.bytes).readDoubleLE(0) };
      else if (f.wire === 2 && f.field === 5) value = { arrayValue: {} };
      else if (f.wire === 2 && f.field === 6) value = { kvlistValue: {} };
      else if (f.wire === 2 && f.field === 7) value = { bytesValue: Buffer.from(f.bytes).toString('base64') };
    }
    return value;
  }

  private async did(amount: number): Promise<void> {
    this.work += amount;
    if (this.work < SPANS_PER_TURN * SPAN_WORK) return;
    this.work = 0;
    await nextTurn();
  }
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const utf8 = (bytes: Uint8Array) => Buffer.from(bytes).toString('utf8');
const fixed64 = (bytes: Uint8Array) => Buffer.from(bytes).readBigUInt64LE(0);

/** An ExportTraceServiceResponse in the request's encoding: empty when everything was accepted. */
export function encodeTraceResponse(result: OtlpExportResult, encoding: OtlpEncoding): Buffer | Record<string, unknown> {
  const object = result.rejectedSpans > 0 || result.errorMessage ? { partialSuccess: { rejectedSpans: result.rejectedSpans, errorMessage: result.errorMessage } } : {};
  if (encoding === 'json') return object;
  const { ExportTraceServiceResponse } = messages();
  return Buffer.from(ExportTraceServiceResponse.encode(ExportTraceServiceResponse.fromObject(object)).finish());
}

/** The spans of a request object, read one at a time as they are iterated. */
function spansOf(request: unknown, idEncoding: 'hex' | 'base64'): Iterable<OtlpSpan> {
  if (!isObject(request)) throw invalid('the body must be an ExportTraceServiceRequest object');
  return (function* () {
    for (const [r, resourceSpans] of list(request.resourceSpans, 'resourceSpans').entries()) {
      const path = `resourceSpans[${r}]`;
      if (!isObject(resourceSpans)) throw invalid(`${path} must be an object`);
      const resource = resourceSpans.resource;
      const resourceAttributes = attributes(isObject(resource) ? resource.attributes : undefined, `${path}.resource.attributes`);
      for (const [s, scopeSpans] of list(resourceSpans.scopeSpans, `${path}.scopeSpans`).entries()) {
        if (!isObject(scopeSpans)) throw invalid(`${path}.scopeSpans[${s}] must be an object`);
        for (const [i, span] of list(scopeSpans.spans, `${path}.scopeSpans[${s}].spans`).entries()) {
          const spanPath = `${path}.scopeSpans[${s}].spans[${i}]`;
          if (!isObject(span)) throw invalid(`${spanPath} must be an object`);
          yield {
            traceId: id(span.traceId, idEncoding, `${spanPath}.traceId`),
            spanId: id(span.spanId, idEncoding, `${spanPath}.spanId`),
            name: typeof span.name === 'string' ? span.name : '',
            endTimeUnixNano: unsigned(span, 'endTimeUnixNano', `${spanPath}.endTimeUnixNano`),
            attributes: attributes(span.attributes, `${spanPath}.attributes`),
            resourceAttributes,
          };
        }
      }
    }
  })();
}

/**
 * Most attributes a span or a resource may have (OpenTelemetry SDKs keep 128 by default): a list of
 * hundreds of thousands, a few MB, would be made into a map in one piece.
 */
const MAX_ATTRIBUTES = 1_000;

function attributes(value: unknown, path: string): Map<string, AttributeValue> {
  const map = new Map<string, AttributeValue>();
  const kvs = list(value, path);
  if (kvs.length > MAX_ATTRIBUTES) throw invalid(`${path} holds more than ${MAX_ATTRIBUTES} attributes`);
  kvs.forEach((kv, i) => {
    if (!isObject(kv) || typeof kv.key !== 'string') throw invalid(`${path}[${i}] must be a KeyValue with a string key`);
    map.set(kv.key, anyValue(kv.value));
  });
  return map;
}

function anyValue(value: unknown): AttributeValue {
  if (!isObject(value)) return value === undefined ? undefined : INVALID_VALUE;
  if (typeof value.stringValue === 'string') return value.stringValue;
  if (typeof value.boolValue === 'boolean') return value.boolValue;
  if (typeof value.intValue === 'string' && /^-?\d{1,20}$/.test(value.intValue)) return BigInt(value.intValue);
  // A JSON number past 2^53 (proto3 JSON accepts numbers for 64-bit integers): its text, as sent.
  if (typeof value.intValue === 'number') {
    const digits = integerDigits(Number.isSafeInteger(value.intValue) ? String(value.intValue) : numberSource(value, 'intValue'));
    if (digits !== null) return BigInt(digits);
  }
  if (typeof value.doubleValue === 'number') return value.doubleValue;
  // proto3 JSON may write a double as a string.
  if (typeof value.doubleValue === 'string' && /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(value.doubleValue)) return Number(value.doubleValue);
  return Object.keys(value).length === 0 ? undefined : INVALID_VALUE;
}

function id(value: unknown, encoding: 'hex' | 'base64', path: string): string {
  if (value === undefined || value === null || value === '') return '';
  if (typeof value !== 'string') throw invalid(`${path} must be a string`);
  if (encoding === 'base64') return Buffer.from(value, 'base64').toString('hex');
  if (!/^[0-9a-fA-F]*$/.test(value)) throw invalid(`${path} must be hex`);
  return value.toLowerCase();
}

/** `object[key]`, an unsigned 64-bit integer: a decimal string, or a JSON number read from its text (proto3 JSON accepts both). */
function unsigned(object: Record<string, unknown>, key: string, path: string): bigint {
  const value = object[key];
  if (value === undefined || value === null) return 0n;
  const text = typeof value === 'number' ? integerDigits(Number.isSafeInteger(value) ? String(value) : numberSource(object, key)) : value;
  if (typeof text === 'string' && /^\d{1,20}$/.test(text)) return BigInt(text);
  throw invalid(`${path} must be an unsigned 64-bit integer`);
}

/**
 * A JSON number's text as the digits of the integer it is (`1.7e18` → 1700000000000000000), or
 * null when it is no integer or needs more than 20 digits. proto3 JSON accepts exponent forms.
 */
function integerDigits(text: string | undefined): string | null {
  const match = text === undefined ? null : /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d{1,3}))?$/.exec(text);
  if (!match) return null;
  const [, sign, whole, fraction = '', exponentText = '0'] = match;
  const exponent = Number(exponentText);
  const mantissa = whole + fraction;
  const point = whole.length + exponent; // digits before the decimal point
  if (point < 0 || point > 40) return /^0*$/.test(mantissa) ? '0' : null;
  const integer = point >= mantissa.length ? mantissa + '0'.repeat(point - mantissa.length) : mantissa.slice(0, point);
  if (!/^0*$/.test(mantissa.slice(Math.max(point, 0)))) return null; // a fraction is left
  const digits = integer.replace(/^0+(?=\d)/, '') || '0';
  return digits.length > 20 ? null : (sign && digits !== '0' ? '-' : '') + digits;
}

function list(value: unknown, path: string): unknown[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw invalid(`${path} must be an array`);
  return value;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value);
}

function invalid(message: string): AppException {
  return AppException.validation([{ param: 'body', message }]);
}

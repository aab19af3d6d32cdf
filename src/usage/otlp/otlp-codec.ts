import { AppException } from '../../common/errors';

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
  decode(reader: Uint8Array): object;
  encode(message: object): { finish(): Uint8Array };
  fromObject(object: object): object;
  toObject(message: object, options: object): Record<string, unknown>;
}

type TraceMessages = Record<'ExportTraceServiceRequest' | 'ExportTraceServiceResponse', MessageType>;
let traceMessages: TraceMessages | undefined;

/**
 * The official OTLP definitions, compiled by OpenTelemetry into a protobufjs root (decoders
 * included) and shipped in @opentelemetry/otlp-transformer up to 0.216; nothing is copied here.
 * Loaded on the first protobuf request: the root holds ~3.5 MB of the heap, which every API
 * process would otherwise carry (and the old generation grows in proportion to what it holds).
 */
function messages(): TraceMessages {
  if (!traceMessages) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const root = require('@opentelemetry/otlp-transformer/build/src/generated/root') as { opentelemetry: { proto: { collector: { trace: { v1: TraceMessages } } } } };
    traceMessages = root.opentelemetry.proto.collector.trace.v1;
  }
  return traceMessages;
}

/** Decodes an ExportTraceServiceRequest (protobuf bytes or OTLP/JSON) into its spans. A malformed body is a 400. */
export function decodeTraceRequest(body: Buffer | unknown, encoding: OtlpEncoding): OtlpSpan[] {
  if (encoding === 'protobuf') {
    // Outside the try: definitions that cannot be loaded are the server's failure, not a bad body.
    const { ExportTraceServiceRequest } = messages();
    let object: Record<string, unknown>;
    try {
      const message = ExportTraceServiceRequest.decode(body as Buffer);
      object = ExportTraceServiceRequest.toObject(message, { longs: String, bytes: String, defaults: false, arrays: true });
    } catch (err) {
      throw invalid(`the body is not a protobuf ExportTraceServiceRequest (${(err as Error).message})`);
    }
    return spansOf(object, 'base64');
  }
  return spansOf(body, 'hex');
}

/** An ExportTraceServiceResponse in the request's encoding: empty when everything was accepted. */
export function encodeTraceResponse(result: OtlpExportResult, encoding: OtlpEncoding): Buffer | Record<string, unknown> {
  const object = result.rejectedSpans > 0 || result.errorMessage ? { partialSuccess: { rejectedSpans: result.rejectedSpans, errorMessage: result.errorMessage } } : {};
  if (encoding === 'json') return object;
  const { ExportTraceServiceResponse } = messages();
  return Buffer.from(ExportTraceServiceResponse.encode(ExportTraceServiceResponse.fromObject(object)).finish());
}

function spansOf(request: unknown, idEncoding: 'hex' | 'base64'): OtlpSpan[] {
  if (!isObject(request)) throw invalid('the body must be an ExportTraceServiceRequest object');
  const spans: OtlpSpan[] = [];
  list(request.resourceSpans, 'resourceSpans').forEach((resourceSpans, r) => {
    const path = `resourceSpans[${r}]`;
    if (!isObject(resourceSpans)) throw invalid(`${path} must be an object`);
    const resource = resourceSpans.resource;
    const resourceAttributes = attributes(isObject(resource) ? resource.attributes : undefined, `${path}.resource.attributes`);
    list(resourceSpans.scopeSpans, `${path}.scopeSpans`).forEach((scopeSpans, s) => {
      if (!isObject(scopeSpans)) throw invalid(`${path}.scopeSpans[${s}] must be an object`);
      list(scopeSpans.spans, `${path}.scopeSpans[${s}].spans`).forEach((span, i) => {
        const spanPath = `${path}.scopeSpans[${s}].spans[${i}]`;
        if (!isObject(span)) throw invalid(`${spanPath} must be an object`);
        spans.push({
          traceId: id(span.traceId, idEncoding, `${spanPath}.traceId`),
          spanId: id(span.spanId, idEncoding, `${spanPath}.spanId`),
          name: typeof span.name === 'string' ? span.name : '',
          endTimeUnixNano: unsigned(span.endTimeUnixNano, `${spanPath}.endTimeUnixNano`),
          attributes: attributes(span.attributes, `${spanPath}.attributes`),
          resourceAttributes,
        });
      });
    });
  });
  return spans;
}

function attributes(value: unknown, path: string): Map<string, AttributeValue> {
  const map = new Map<string, AttributeValue>();
  list(value, path).forEach((kv, i) => {
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
  if (typeof value.intValue === 'number' && Number.isSafeInteger(value.intValue)) return BigInt(value.intValue);
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

function unsigned(value: unknown, path: string): bigint {
  if (value === undefined || value === null) return 0n;
  if (typeof value === 'string' && /^\d{1,20}$/.test(value)) return BigInt(value);
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  throw invalid(`${path} must be an unsigned 64-bit integer (a decimal string in OTLP/JSON)`);
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

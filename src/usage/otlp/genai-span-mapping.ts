import { AttributeValue, OtlpSpan } from './otlp-codec';

/**
 * The contract between OpenTelemetry GenAI spans and Tally's completion records (SPEC §7). It is
 * a contract with outsiders (Envoy AI Gateway, LiteLLM, OpenLLMetry, the Vercel AI SDK…), so it
 * has its own types and attribute names here: a change of the REST ingest DTO cannot change it.
 */
export const GENAI_ATTRIBUTES = {
  inputTokens: ['gen_ai.usage.input_tokens', 'gen_ai.usage.prompt_tokens'],
  outputTokens: ['gen_ai.usage.output_tokens', 'gen_ai.usage.completion_tokens'],
  cachedInputTokens: ['gen_ai.usage.cache_read.input_tokens'],
  id: ['gen_ai.response.id'],
  model: ['gen_ai.response.model', 'gen_ai.request.model'],
  apiKeyId: ['tally.api_key_id'],
  userId: ['user.id', 'enduser.id'],
} as const;

/** The record a GenAI span with usage becomes. */
export interface GenAiSpanUsage {
  /** `gen_ai.response.id`, else the trace id and span id (hex, 48 characters). */
  id: string;
  /** `tally.api_key_id` of the span, else of its resource. */
  apiKeyId: string;
  /** `gen_ai.response.model`, else `gen_ai.request.model`. */
  model: string;
  /** `gen_ai.usage.input_tokens` (older: `prompt_tokens`); cached tokens included, as OpenAI counts them. */
  inputTokens: number;
  /** `gen_ai.usage.output_tokens` (older: `completion_tokens`). */
  outputTokens: number;
  /** `gen_ai.usage.cache_read.input_tokens`, default 0. */
  inputCachedTokens: number;
  /** `user.id`, else `enduser.id` (of the span, else of its resource); an integer as its digits. */
  userId: string | null;
  /** The span's end, in Unix seconds. */
  createdAt: number;
}

export type SpanMapping =
  | { kind: 'usage'; usage: GenAiSpanUsage }
  /** No GenAI usage attribute: not a model call to meter (ignored, not rejected). */
  | { kind: 'no-usage' }
  /** Usage that cannot become a record: counted in `partialSuccess.rejectedSpans`. */
  | { kind: 'rejected'; reason: string };

/** Maps one span. Usage values must be non-negative integers (int, integral double or digit string). */
export function mapGenAiSpan(span: OtlpSpan): SpanMapping {
  const input = first(span, GENAI_ATTRIBUTES.inputTokens, false);
  const output = first(span, GENAI_ATTRIBUTES.outputTokens, false);
  if (input === undefined && output === undefined) return { kind: 'no-usage' };

  const problems: string[] = [];
  const count = (names: readonly string[], value: AttributeValue): number => {
    if (value === undefined) return 0;
    const n = tokenCount(value);
    if (n === null) problems.push(`${names[0]} must be a non-negative integer`);
    return n ?? 0;
  };
  const inputTokens = count(GENAI_ATTRIBUTES.inputTokens, input);
  const outputTokens = count(GENAI_ATTRIBUTES.outputTokens, output);
  const inputCachedTokens = count(GENAI_ATTRIBUTES.cachedInputTokens, first(span, GENAI_ATTRIBUTES.cachedInputTokens, false));
  const model = text(first(span, GENAI_ATTRIBUTES.model, false, true));
  const apiKeyId = text(first(span, GENAI_ATTRIBUTES.apiKeyId, true, true));
  if (!model) problems.push(`no ${GENAI_ATTRIBUTES.model.join(' or ')}`);
  if (!apiKeyId) problems.push(`no ${GENAI_ATTRIBUTES.apiKeyId[0]} on the span or its resource`);
  const createdAt = Number(span.endTimeUnixNano / 1_000_000_000n);
  if (createdAt === 0) problems.push('the span has no end time');
  const id = text(first(span, GENAI_ATTRIBUTES.id, false)) ?? (span.traceId && span.spanId ? span.traceId + span.spanId : null);
  if (!id) problems.push(`no ${GENAI_ATTRIBUTES.id[0]} and no trace and span id`);
  // A numeric end-user id is common; any other kind is refused, not dropped (user budgets count it).
  const user = first(span, GENAI_ATTRIBUTES.userId, true, true);
  const userId = typeof user === 'bigint' ? user.toString() : text(user);
  if (user !== undefined && userId === null) problems.push(`${GENAI_ATTRIBUTES.userId.join(' or ')} must be a string or an integer`);
  if (problems.length > 0) return { kind: 'rejected', reason: problems.join('; ') };

  return {
    kind: 'usage',
    usage: {
      id: id!,
      apiKeyId: apiKeyId!,
      model: model!,
      inputTokens,
      outputTokens,
      inputCachedTokens,
      userId,
      createdAt,
    },
  };
}

/** The first of `names` set on the span (then, with `orResource`, on its resource). */
function first(span: OtlpSpan, names: readonly string[], orResource: boolean, emptyIsUnset = false): AttributeValue {
  // An empty name is no value (the next attribute, or the resource's, may have one); an empty count is a bad one.
  const set = (v: AttributeValue) => v !== undefined && !(emptyIsUnset && v === '');
  for (const name of names) if (set(span.attributes.get(name))) return span.attributes.get(name);
  if (orResource) for (const name of names) if (set(span.resourceAttributes.get(name))) return span.resourceAttributes.get(name);
  return undefined;
}

function tokenCount(value: AttributeValue): number | null {
  let n: number | bigint | null = null;
  if (typeof value === 'bigint') n = value;
  else if (typeof value === 'number' && Number.isInteger(value)) n = value;
  else if (typeof value === 'string' && /^\d{1,16}$/.test(value)) n = Number(value);
  if (n === null || n < 0 || n > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  return Number(n);
}

function text(value: AttributeValue): string | null {
  return typeof value === 'string' && value !== '' ? value : null;
}

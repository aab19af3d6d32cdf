import { mapGenAiSpan } from './genai-span-mapping';
import { AttributeValue, INVALID_VALUE, OtlpSpan } from './otlp-codec';

const END = 1_763_316_001_250_000_000n; // 2025-11-16T18:00:01.25Z

function span(attributes: Record<string, AttributeValue>, resource: Record<string, AttributeValue> = {}, extra: Partial<OtlpSpan> = {}): OtlpSpan {
  return {
    traceId: '5b8efff798038103d269b633813fc60c',
    spanId: 'eee19b7ec3c1b174',
    name: 'chat',
    endTimeUnixNano: END,
    attributes: new Map(Object.entries(attributes)),
    resourceAttributes: new Map(Object.entries(resource)),
    ...extra,
  };
}

describe('GenAI span → completion record mapping', () => {
  it('maps the current attribute names', () => {
    const mapped = mapGenAiSpan(
      span({
        'gen_ai.response.id': 'chatcmpl-1',
        'gen_ai.request.model': 'gpt-4o',
        'gen_ai.response.model': 'gpt-4o-2024-08-06',
        'gen_ai.usage.input_tokens': 1200n,
        'gen_ai.usage.output_tokens': 300n,
        'gen_ai.usage.cache_read.input_tokens': 200n,
        'tally.api_key_id': 'key_span',
        'user.id': 'user_1',
        'enduser.id': 'user_2',
      }, { 'tally.api_key_id': 'key_resource' }),
    );
    expect(mapped).toEqual({
      kind: 'usage',
      usage: { id: 'chatcmpl-1', apiKeyId: 'key_span', model: 'gpt-4o-2024-08-06', inputTokens: 1200, outputTokens: 300, inputCachedTokens: 200, userId: 'user_1', createdAt: 1763316001 },
    });
  });

  it('falls back to the older names, the request model, the trace and span id, and resource attributes', () => {
    const mapped = mapGenAiSpan(
      span({ 'gen_ai.request.model': 'gpt-4o', 'gen_ai.usage.prompt_tokens': 50, 'gen_ai.usage.completion_tokens': '7' }, { 'tally.api_key_id': 'key_resource', 'enduser.id': 'user_2' }),
    );
    expect(mapped).toEqual({
      kind: 'usage',
      usage: {
        id: '5b8efff798038103d269b633813fc60ceee19b7ec3c1b174',
        apiKeyId: 'key_resource',
        model: 'gpt-4o',
        inputTokens: 50,
        outputTokens: 7,
        inputCachedTokens: 0,
        userId: 'user_2',
        createdAt: 1763316001,
      },
    });
  });

  it('prefers the current names over the older ones when a span carries both', () => {
    const mapped = mapGenAiSpan(
      span({ 'gen_ai.request.model': 'm', 'tally.api_key_id': 'k', 'gen_ai.usage.input_tokens': 10n, 'gen_ai.usage.prompt_tokens': 99n, 'gen_ai.usage.output_tokens': 1n, 'gen_ai.usage.completion_tokens': 98n }),
    );
    expect(mapped.kind === 'usage' && [mapped.usage.inputTokens, mapped.usage.outputTokens]).toEqual([10, 1]);
  });

  it('ignores spans without usage attributes', () => {
    expect(mapGenAiSpan(span({ 'gen_ai.request.model': 'gpt-4o', 'tally.api_key_id': 'k', 'http.request.method': 'POST' }))).toEqual({ kind: 'no-usage' });
    expect(mapGenAiSpan(span({ 'gen_ai.usage.cache_read.input_tokens': 5n }))).toEqual({ kind: 'no-usage' });
  });

  it('rejects usage it cannot store, saying why', () => {
    const reason = (attributes: Record<string, AttributeValue>, extra: Partial<OtlpSpan> = {}) => {
      const mapped = mapGenAiSpan(span(attributes, {}, extra));
      return mapped.kind === 'rejected' ? mapped.reason : mapped.kind;
    };
    const ok = { 'gen_ai.request.model': 'm', 'tally.api_key_id': 'k' };
    expect(reason({ ...ok, 'gen_ai.usage.input_tokens': -1n })).toBe('gen_ai.usage.input_tokens must be a non-negative integer');
    expect(reason({ ...ok, 'gen_ai.usage.output_tokens': 1.5 })).toBe('gen_ai.usage.output_tokens must be a non-negative integer');
    expect(reason({ ...ok, 'gen_ai.usage.output_tokens': 'many' })).toBe('gen_ai.usage.output_tokens must be a non-negative integer');
    expect(reason({ ...ok, 'gen_ai.usage.output_tokens': 2n ** 60n })).toBe('gen_ai.usage.output_tokens must be a non-negative integer');
    expect(reason({ 'tally.api_key_id': 'k', 'gen_ai.usage.input_tokens': 1n })).toBe('no gen_ai.response.model or gen_ai.request.model');
    expect(reason({ 'gen_ai.request.model': 'm', 'gen_ai.usage.input_tokens': 1n })).toBe('no tally.api_key_id on the span or its resource');
    expect(reason({ ...ok, 'gen_ai.usage.input_tokens': 1n }, { endTimeUnixNano: 0n })).toBe('the span has no end time');
    expect(reason({ ...ok, 'gen_ai.usage.input_tokens': 1n }, { traceId: '', spanId: '' })).toBe('no gen_ai.response.id and no trace and span id');
    // Set but unreadable (an empty string, a value the codec could not read exactly): rejected, never counted as 0.
    expect(reason({ ...ok, 'gen_ai.usage.input_tokens': '', 'gen_ai.usage.output_tokens': '' })).toBe(
      'gen_ai.usage.input_tokens must be a non-negative integer; gen_ai.usage.output_tokens must be a non-negative integer',
    );
    expect(reason({ ...ok, 'gen_ai.usage.input_tokens': INVALID_VALUE, 'gen_ai.usage.output_tokens': 2n })).toBe('gen_ai.usage.input_tokens must be a non-negative integer');
  });

  it("reads an empty name as unset: the resource's key applies", () => {
    const mapped = mapGenAiSpan(span({ 'gen_ai.request.model': 'm', 'tally.api_key_id': '', 'gen_ai.usage.input_tokens': 1n }, { 'tally.api_key_id': 'k' }));
    expect(mapped).toMatchObject({ kind: 'usage', usage: { apiKeyId: 'k' } });
  });

  it('accepts integral doubles (some SDKs send counts as doubles)', () => {
    const mapped = mapGenAiSpan(span({ 'gen_ai.request.model': 'm', 'tally.api_key_id': 'k', 'gen_ai.usage.input_tokens': 12.0, 'gen_ai.usage.output_tokens': 3 }));
    expect(mapped.kind === 'usage' && [mapped.usage.inputTokens, mapped.usage.outputTokens]).toEqual([12, 3]);
  });

  it('reads an integer end-user id as its digits, skips an empty one, and rejects any other kind instead of dropping the user', () => {
    const base = { 'gen_ai.request.model': 'm', 'tally.api_key_id': 'k', 'gen_ai.usage.input_tokens': 1n };
    const userOf = (attributes: Record<string, AttributeValue>, resource: Record<string, AttributeValue> = {}) => mapGenAiSpan(span({ ...base, ...attributes }, resource));
    expect(userOf({ 'user.id': 4242n, 'enduser.id': 'bob' })).toMatchObject({ kind: 'usage', usage: { userId: '4242' } });
    expect(userOf({ 'user.id': '', 'enduser.id': 'bob' })).toMatchObject({ kind: 'usage', usage: { userId: 'bob' } });
    expect(userOf({}, { 'enduser.id': 7n })).toMatchObject({ kind: 'usage', usage: { userId: '7' } });
    expect(userOf({})).toMatchObject({ kind: 'usage', usage: { userId: null } });
    for (const value of [true, 1.5, INVALID_VALUE]) {
      expect(userOf({ 'user.id': value, 'enduser.id': 'bob' })).toEqual({ kind: 'rejected', reason: 'user.id or enduser.id must be a string or an integer' });
    }
  });
});

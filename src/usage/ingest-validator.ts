import { AppException, FieldProblem } from '../common/errors';
import { MAX_BIGINT } from '../common/money';
import { DecimalRefusal, DecimalRules, readExactDecimal } from '../common/exact-decimal';
import { numberSource } from '../common/exact-json';
import { exactIntegerOrRaw, NO_CONTROL_CHARACTERS } from '../common/validation';
import { IngestRecordDto, MAX_BATCH } from './dto/ingest.dto';
import { DAY } from './time-buckets';
import {
  EARLIEST_RECORD_TIME,
  ID_PATTERN,
  MAX_FUTURE_SKEW_SECONDS,
  MODEL_MAX_LENGTH,
  PRINTABLE_PATTERN,
  PROJECT_ID_MAX_LENGTH,
  RECORD_ID_MAX_LENGTH,
  SERVICE_TIER_MAX_LENGTH,
  USER_ID_MAX_LENGTH,
  USER_ID_PATTERN,
  USER_ID_PATTERN_MESSAGE,
} from './usage-fields';

/**
 * The ingest body's validator (issue 13): one pass over plain objects, no class instances per
 * record. It applies the rules that {@link IngestRecordDto} documents (the DTO stays the OpenAPI
 * schema) and words every problem as the global class-validator pipe does, so the 400 names every
 * bad index and field exactly as before (src/usage/ingest-validator.spec.ts checks both agree).
 * Unlike the generic pipe it also refuses a record that is an array or that carries a field named
 * like an Object.prototype member.
 */

const NOT_OBJECT = 'each value in nested property records must be either object or array';
const PRINTABLE_MESSAGE = 'must be printable ASCII characters without spaces';
const MAX_TOKENS = Number.MAX_SAFE_INTEGER;

const COST_NANO_RULES: DecimalRules = { maxDecimals: 0, max: MAX_BIGINT.toString(), min: 'nonNegative' };

/**
 * The one place a client's cost_nano becomes a bigint: a JSON integer in any form (`5250000`,
 * `5.25e6`, read exactly from its text when the body parser kept it) or a string of digits, up to
 * 2^63 − 1 (see common/exact-decimal.ts). A refusal names the broken rule.
 */
export function parseCostNano(value: unknown, source: string | undefined): bigint | DecimalRefusal {
  const read = readExactDecimal(value, source, COST_NANO_RULES, { strings: true });
  return read instanceof DecimalRefusal ? read : BigInt(read);
}

/**
 * SPEC §8: raw records are kept RECORDS_RETENTION_DAYS; an older one could not be deduplicated or
 * reported. The refusal's message, or null. (The ingest service applies it to every ingest path.)
 */
export function pastRetention(createdAt: number, retentionDays: number, now = Date.now() / 1000): string | null {
  return createdAt < now - retentionDays * DAY ? `is older than the record retention of ${retentionDays} days (RECORDS_RETENTION_DAYS)` : null;
}

interface Context {
  /** Unix seconds. */
  now: number;
  retentionDays: number;
}
type Check = (value: unknown, record: Record<string, unknown>, context: Context) => string[];

interface StringRule {
  maxLength: number;
  pattern?: RegExp;
  patternMessage?: string;
}

/** IsString, IsNotEmpty, MinLength(1), MaxLength, Matches: every failing one, in that order. */
function stringMessages(value: unknown, rule: StringRule): string[] {
  const messages: string[] = [];
  const isString = typeof value === 'string';
  if (!isString) messages.push('must be a string');
  if (value === '' || value === null || value === undefined) messages.push('should not be empty');
  if (!isString || value.length < 1) messages.push('must be longer than or equal to 1 characters');
  if (!isString || value.length > rule.maxLength) messages.push(`must be shorter than or equal to ${rule.maxLength} characters`);
  const pattern = rule.pattern ?? NO_CONTROL_CHARACTERS;
  if (!isString || !pattern.test(value)) {
    messages.push(rule.pattern ? (rule.patternMessage ?? `must match ${rule.pattern}`) : 'must not contain control characters');
  }
  return messages;
}

/** IsInt, Min, Max. */
function intMessages(value: unknown, min: number, max?: number): string[] {
  const messages: string[] = [];
  const isNumber = typeof value === 'number';
  if (!isNumber || !Number.isInteger(value)) messages.push('must be an integer number');
  if (!isNumber || !(value >= min)) messages.push(`must not be less than ${min}`);
  if (max !== undefined && (!isNumber || !(value <= max))) messages.push(`must not be greater than ${max}`);
  return messages;
}

const absent = (value: unknown) => value === null || value === undefined;
/** Required: always checked. Optional / nullable: skipped when null or undefined. */
const required = (check: (value: unknown) => string[]): Check => (value) => check(value);
const optional = (check: Check): Check => (value, record, context) => (absent(value) ? [] : check(value, record, context));
const str = (rule: StringRule) => (value: unknown) => stringMessages(value, rule);
/** The value an integer field is checked as: a number whose text the body parser kept only when that text is exactly a safe integer. */
const exact = (value: unknown, record: Record<string, unknown>, field: string) => exactIntegerOrRaw(value, numberSource(record, field));
const tokens = (field: string): Check => (value, record) => intMessages(exact(value, record, field), 0, MAX_TOKENS);

/** Every known field and its checks, in the DTO's declaration order (the order problems are listed in). */
const FIELDS: Record<keyof IngestRecordDto, Check> = {
  id: required(str({ maxLength: RECORD_ID_MAX_LENGTH, pattern: PRINTABLE_PATTERN, patternMessage: PRINTABLE_MESSAGE })),
  api_key_id: required(str({ maxLength: 40, pattern: ID_PATTERN })),
  org_id: optional(str({ maxLength: 40, pattern: ID_PATTERN })),
  model: required(str({ maxLength: MODEL_MAX_LENGTH, pattern: PRINTABLE_PATTERN, patternMessage: PRINTABLE_MESSAGE })),
  input_tokens: tokens('input_tokens'),
  output_tokens: tokens('output_tokens'),
  input_cached_tokens: optional((value, record, context) => {
    const cached = exact(value, record, 'input_cached_tokens');
    const input = exact(record.input_tokens, record, 'input_tokens');
    return [
      ...(typeof cached === 'number' && typeof input === 'number' && cached > input ? ['must not be greater than input_tokens'] : []),
      ...tokens('input_cached_tokens')(value, record, context),
    ];
  }),
  input_audio_tokens: optional(tokens('input_audio_tokens')),
  output_audio_tokens: optional(tokens('output_audio_tokens')),
  user_id: optional(str({ maxLength: USER_ID_MAX_LENGTH, pattern: USER_ID_PATTERN, patternMessage: USER_ID_PATTERN_MESSAGE })),
  project_id: optional(str({ maxLength: PROJECT_ID_MAX_LENGTH })),
  batch: optional((value) => (typeof value === 'boolean' ? [] : ['must be a boolean value'])),
  service_tier: optional(str({ maxLength: SERVICE_TIER_MAX_LENGTH })),
  cost_nano: optional((value, record) => {
    const parsed = parseCostNano(value, numberSource(record, 'cost_nano'));
    return parsed instanceof DecimalRefusal ? [parsed.message] : [];
  }),
  reservation_id: optional(str({ maxLength: 40, pattern: ID_PATTERN })),
  created_at: (sent, record, { now, retentionDays }) => {
    const value = exact(sent, record, 'created_at');
    const messages = [
      ...(typeof value === 'number' && value > now + MAX_FUTURE_SKEW_SECONDS ? ['must not be more than one day in the future'] : []),
      ...intMessages(value, EARLIEST_RECORD_TIME),
    ];
    const tooOld = messages.length === 0 ? pastRetention(value as number, retentionDays, now) : null;
    return tooOld ? [...messages, tooOld] : messages;
  },
};
const FIELD_NAMES = Object.keys(FIELDS) as Array<keyof IngestRecordDto>;
const KNOWN = new Set<string>(FIELD_NAMES);

const isPlainObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

function recordProblems(value: unknown, path: string, context: Context, problems: FieldProblem[]): void {
  if (!isPlainObject(value)) {
    problems.push({ param: path, message: Array.isArray(value) ? 'must be an object' : NOT_OBJECT });
    return;
  }
  for (const key of Object.keys(value)) {
    if (!KNOWN.has(key)) problems.push({ param: `${path}.${key}`, message: 'is not a known field' });
  }
  for (const field of FIELD_NAMES) {
    const messages = FIELDS[field](value[field], value, context);
    if (messages.length > 0) problems.push({ param: `${path}.${field}`, message: messages.join(', ') });
  }
}

/**
 * Validates `{"records": [...]}` and takes the records out of it (the objects as sent, not
 * copies): the request keeps its body until it is answered, and the ingest turns the records
 * into its own objects before its first round trip, so the parsed ones can be collected young.
 * Throws one 400 naming every bad index and field. Records older than `retentionDays` are refused.
 */
export function parseIngestBody(body: unknown, retentionDays: number, now = Date.now() / 1000): IngestRecordDto[] {
  const context: Context = { now, retentionDays };
  const problems: FieldProblem[] = [];
  const object = isPlainObject(body) ? body : {};
  for (const key of Object.keys(object)) {
    if (key !== 'records') problems.push({ param: key, message: 'is not a known field' });
  }
  const records = object.records;
  if (!Array.isArray(records)) {
    const messages = [`must contain no more than ${MAX_BATCH} elements`, 'must contain at least 1 elements', 'must be an array'];
    if (records !== undefined && !isPlainObject(records)) messages.push(NOT_OBJECT);
    problems.push({ param: 'records', message: messages.join(', ') });
  } else {
    if (records.length > MAX_BATCH) problems.push({ param: 'records', message: `must contain no more than ${MAX_BATCH} elements` });
    if (records.length < 1) problems.push({ param: 'records', message: 'must contain at least 1 elements' });
    for (let i = 0; i < records.length; i++) recordProblems(records[i], `records[${i}]`, context, problems);
  }
  if (problems.length > 0) throw AppException.validation(problems);
  object.records = undefined;
  return records as IngestRecordDto[];
}

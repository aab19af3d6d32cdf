import { computeCostNano } from '../common/money';
import { numberSource } from '../common/exact-json';
import { isoSecondsFormatter, plainArrayLiteral, textArrayLiteral } from '../database/pg-arrays';
import { IngestRecordDto } from './dto/ingest.dto';
import { parseCostNano } from './ingest-validator';
import { PriceResolver } from './price-book.service';
import { RECORD_COLUMNS, RecordColumn } from './rollup-journal';

// The records of one ingest (UsageIngestService), from parsed to stored: one flat object each,
// and the insert's parameters made from them.

/** A record an ingest stored (never one skipped as a duplicate). */
export interface IngestedRecord {
  orgId: string;
  id: string;
  apiKeyId: string;
  /** The key's team, or null. */
  teamId: string | null;
  /** The end user, or null. */
  userId: string | null;
  /** Unix seconds. */
  createdAt: number;
  /** input_tokens + output_tokens. */
  tokens: bigint;
  costNano: bigint;
  /** The reservation the record names (settled by the ingest workflow), if any. */
  reservationId: string | null;
}

/**
 * A validated record, flat: made from the parsed one before the first round trip (a draft: org,
 * team and cost are placeholders until the ingest sets them from its key and prices), stored,
 * and handed on as an {@link IngestedRecord}. One object per record for the whole batch: the
 * batch lives through its round trips, so each per-record object costs its bytes again when the
 * young generation promotes it.
 */
export interface StoredRecord extends IngestedRecord {
  model: string;
  projectId: string | null;
  serviceTier: string | null;
  batch: boolean;
  /** Token counts as validated (safe integers). */
  inputTokens: number;
  outputTokens: number;
  inputCachedTokens: number;
  inputAudioTokens: number;
  outputAudioTokens: number;
  unpriced: boolean;
  /** The org_id the record named (checked against its key's), or null. */
  sentOrgId: string | null;
  /** cost_nano as sent, or null: priced from the price book. */
  sentCostNano: bigint | null;
}

/** Sets the record's cost: as sent, else from the price version in force at its created_at, else 0 and unpriced. */
export function price(record: StoredRecord, resolve: PriceResolver): void {
  if (record.sentCostNano !== null) {
    record.costNano = record.sentCostNano;
    return;
  }
  const prices = resolve(record.model, record.createdAt);
  if (!prices) {
    record.unpriced = true;
    return;
  }
  const tokens = { inputTokens: record.inputTokens, inputCachedTokens: record.inputCachedTokens, outputTokens: record.outputTokens };
  record.costNano = computeCostNano(tokens, prices);
}

/** The record as stored, but for its org, team and cost (set by prepare once its key and prices are read). */
export function toDraft(record: IngestRecordDto, intern: (text: string) => string): StoredRecord {
  const sentCost = record.cost_nano;
  return {
    orgId: '',
    id: record.id,
    apiKeyId: intern(record.api_key_id),
    teamId: null,
    userId: record.user_id ? intern(record.user_id) : null,
    createdAt: record.created_at,
    tokens: BigInt(record.input_tokens) + BigInt(record.output_tokens),
    costNano: 0n,
    reservationId: record.reservation_id ?? null,
    model: intern(record.model),
    projectId: record.project_id ? intern(record.project_id) : null,
    serviceTier: record.service_tier ? intern(record.service_tier) : null,
    batch: record.batch ?? false,
    inputTokens: record.input_tokens,
    outputTokens: record.output_tokens,
    inputCachedTokens: record.input_cached_tokens ?? 0,
    inputAudioTokens: record.input_audio_tokens ?? 0,
    outputAudioTokens: record.output_audio_tokens ?? 0,
    unpriced: false,
    sentOrgId: record.org_id ?? null,
    // Validated already (ingest-validator.ts); read with the same function, from the number's own text.
    sentCostNano: sentCost === undefined || sentCost === null ? null : (parseCostNano(sentCost, numberSource(record, 'cost_nano')) as bigint),
  };
}

/**
 * One string object per distinct text of a batch: JSON.parse makes a new string for every value,
 * so a batch of 1,000 records on a few keys and models would otherwise hold a thousand copies of
 * each name through its round trips.
 */
export function interner(): (text: string) => string {
  const seen = new Map<string, string>();
  return (text) => {
    const known = seen.get(text);
    if (known !== undefined) return known;
    seen.set(text, text);
    return text;
  };
}

/** The unnest parameters of insertRecordsSql (rollup-journal.ts): one array literal per column (see pg-arrays.ts). */
export function recordColumns(records: StoredRecord[]): string[] {
  const iso = isoSecondsFormatter();
  const value: Record<RecordColumn, () => string> = {
    org_id: () => textArrayLiteral(records, (r) => r.orgId),
    id: () => textArrayLiteral(records, (r) => r.id),
    api_key_id: () => textArrayLiteral(records, (r) => r.apiKeyId),
    team_id: () => textArrayLiteral(records, (r) => r.teamId),
    user_id: () => textArrayLiteral(records, (r) => r.userId),
    project_id: () => textArrayLiteral(records, (r) => r.projectId),
    model: () => textArrayLiteral(records, (r) => r.model),
    input_tokens: () => plainArrayLiteral(records, (r) => r.inputTokens),
    output_tokens: () => plainArrayLiteral(records, (r) => r.outputTokens),
    input_cached_tokens: () => plainArrayLiteral(records, (r) => r.inputCachedTokens),
    input_audio_tokens: () => plainArrayLiteral(records, (r) => r.inputAudioTokens),
    output_audio_tokens: () => plainArrayLiteral(records, (r) => r.outputAudioTokens),
    batch: () => plainArrayLiteral(records, (r) => r.batch),
    service_tier: () => textArrayLiteral(records, (r) => r.serviceTier),
    cost_nano: () => plainArrayLiteral(records, (r) => r.costNano),
    unpriced: () => plainArrayLiteral(records, (r) => r.unpriced),
    created_at: () => textArrayLiteral(records, (r) => iso(r.createdAt)),
  };
  return RECORD_COLUMNS.map(([column]) => value[column]());
}

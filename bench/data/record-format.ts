import { isoSecondsFormatter } from '../../src/database/pg-arrays';
import { GeneratedRecord } from './traffic';

/** completion_records columns a COPY fills (ingested_at takes its default). */
export const RECORD_COLUMNS = [
  'org_id',
  'id',
  'api_key_id',
  'team_id',
  'user_id',
  'project_id',
  'model',
  'input_tokens',
  'output_tokens',
  'input_cached_tokens',
  'input_audio_tokens',
  'output_audio_tokens',
  'batch',
  'service_tier',
  'cost_nano',
  'unpriced',
  'created_at',
] as const;

const text = (value: string | null) => (value === null ? '\\N' : value);

/** `YYYY-MM-DDTHH:MM:SSZ`, formatting each minute once (records come in time order). */
const isoSeconds = isoSecondsFormatter();

/** One line of PostgreSQL's text COPY format (no value of the generator holds a tab or backslash). */
export function copyLine(r: GeneratedRecord): string {
  return (
    `${r.orgId}\t${r.id}\t${r.apiKeyId}\t${text(r.teamId)}\t${r.userId}\t${text(r.projectId)}\t${r.model}\t` +
    `${r.inputTokens}\t${r.outputTokens}\t${r.inputCachedTokens}\t${r.inputAudioTokens}\t${r.outputAudioTokens}\t` +
    `${r.batch ? 't' : 'f'}\t${text(r.serviceTier)}\t${r.costNano}\tf\t${isoSeconds(r.createdAt)}\n`
  );
}

/** Records as COPY text, in chunks of about `rowsPerChunk` lines. */
export function* copyChunks(records: Iterable<GeneratedRecord>, rowsPerChunk = 4000): Generator<string> {
  let lines: string[] = [];
  for (const record of records) {
    lines.push(copyLine(record));
    if (lines.length >= rowsPerChunk) {
      yield lines.join('');
      lines = [];
    }
  }
  if (lines.length > 0) yield lines.join('');
}

/**
 * A record as the gateway posts it to /api/v1/llm/usage/records: no cost (the service prices it
 * from the price book, to the same nano-unit as {@link copyLine}), no org (it comes from the key).
 */
export function ingestRecord(r: GeneratedRecord): Record<string, unknown> {
  return {
    id: r.id,
    api_key_id: r.apiKeyId,
    model: r.model,
    input_tokens: r.inputTokens,
    output_tokens: r.outputTokens,
    input_cached_tokens: r.inputCachedTokens,
    input_audio_tokens: r.inputAudioTokens,
    output_audio_tokens: r.outputAudioTokens,
    user_id: r.userId,
    project_id: r.projectId,
    batch: r.batch,
    service_tier: r.serviceTier,
    created_at: r.createdAt,
  };
}

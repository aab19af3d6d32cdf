import { setImmediate as nextTurn } from 'node:timers/promises';
import { Injectable } from '@nestjs/common';
import { plainToInstance } from 'class-transformer';
import { validateSync } from 'class-validator';
import { AppException, ErrorCode } from '../../common/errors';
import { flattenValidationErrors } from '../../common/validation';
import { IngestRecordDto, MAX_BATCH } from '../dto/ingest.dto';
import { IngestWorkflow } from '../../workflows/ingest.workflow';
import { GenAiSpanUsage, mapGenAiSpan } from './genai-span-mapping';
import { OtlpExportResult, OtlpSpan } from './otlp-codec';

interface Candidate {
  label: string;
  record: IngestRecordDto;
}

const MAX_MESSAGES = 10;
/**
 * Spans mapped and validated between two turns of the event loop (~100 µs a span): an export of
 * tens of thousands must not hold every other request for seconds.
 */
const SPANS_PER_TURN = 256;

/**
 * OTLP traces as an ingest path: GenAI spans with usage become completion records stored by the
 * same ingest as `POST /usage/records` (idempotent by record id). Spans without usage are
 * ignored; spans whose usage cannot be stored are rejected one by one, never the whole export.
 */
@Injectable()
export class OtlpIngestService {
  constructor(private readonly ingest: IngestWorkflow) {}

  async exportSpans(spans: Iterable<OtlpSpan>): Promise<OtlpExportResult> {
    const rejected: string[] = [];
    const candidates: Candidate[] = [];
    let read = 0;
    for (const span of spans) {
      if (++read % SPANS_PER_TURN === 0) await nextTurn();
      const label = `span ${span.traceId}/${span.spanId}`;
      const mapping = mapGenAiSpan(span);
      if (mapping.kind === 'rejected') rejected.push(`${label}: ${mapping.reason}`);
      if (mapping.kind !== 'usage') continue;
      const record = toIngestRecord(mapping.usage);
      const problems = flattenValidationErrors(validateSync(record, { whitelist: true, forbidNonWhitelisted: true }));
      if (problems.length > 0) rejected.push(`${label}: ${problems.map((p) => `${p.param} ${p.message}`).join('; ')}`);
      else candidates.push({ label, record });
    }
    for (let i = 0; i < candidates.length; i += MAX_BATCH) rejected.push(...(await this.store(candidates.slice(i, i + MAX_BATCH))));
    return { rejectedSpans: rejected.length, errorMessage: summary(rejected) };
  }

  /**
   * Stores a batch through the records ingest; the records it refuses (unknown key, a cost that
   * overflows) are taken out, each with its reason, and the rest is stored.
   */
  private async store(batch: Candidate[]): Promise<string[]> {
    const rejected: string[] = [];
    while (batch.length > 0) {
      try {
        await this.ingest.ingest(batch.map((c) => c.record));
        break;
      } catch (err) {
        const bad = refusedRecords(err);
        if (!bad) throw err;
        bad.forEach((reason, index) => rejected.push(`${batch[index].label}: ${reason}`));
        batch = batch.filter((_c, index) => !bad.has(index));
      }
    }
    return rejected;
  }
}

/** The contract's record as the ingest DTO. */
function toIngestRecord(usage: GenAiSpanUsage): IngestRecordDto {
  return plainToInstance(IngestRecordDto, {
    id: usage.id,
    api_key_id: usage.apiKeyId,
    model: usage.model,
    input_tokens: usage.inputTokens,
    output_tokens: usage.outputTokens,
    input_cached_tokens: usage.inputCachedTokens,
    user_id: usage.userId,
    created_at: usage.createdAt,
  });
}

/** The records (by index) a 400 of the ingest names, or null when the error is about something else. */
function refusedRecords(err: unknown): Map<number, string> | null {
  if (!(err instanceof AppException) || err.code !== ErrorCode.ValidationFailed || !err.details?.length) return null;
  const bad = new Map<number, string>();
  for (const problem of err.details) {
    const match = /^records\[(\d+)\]\.?(.*)$/.exec(problem.param);
    if (!match) return null;
    const index = Number(match[1]);
    bad.set(index, [bad.get(index), `${match[2] || 'record'} ${problem.message}`].filter(Boolean).join('; '));
  }
  return bad;
}

function summary(rejected: string[]): string {
  if (rejected.length === 0) return '';
  const more = rejected.length > MAX_MESSAGES ? `; and ${rejected.length - MAX_MESSAGES} more` : '';
  return `${rejected.length} span(s) with GenAI usage could not be stored: ${rejected.slice(0, MAX_MESSAGES).join('; ')}${more}`;
}

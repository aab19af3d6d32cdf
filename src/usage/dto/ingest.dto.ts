import { ApiProperty, ApiSchema } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { ArrayMaxSize, ArrayMinSize, IsArray, ValidateNested } from 'class-validator';
import { MAX_BIGINT } from '../../common/money';
import { BigIntField, BoolField, Check, IntField, StringField } from '../../common/validation';
import {
  EARLIEST_RECORD_TIME,
  ID_PATTERN,
  MAX_FUTURE_SKEW_SECONDS,
  MODEL_MAX_LENGTH,
  PRINTABLE_PATTERN,
  PROJECT_ID_MAX_LENGTH,
  RECORD_ID_MAX_LENGTH,
  SERVICE_TIER_MAX_LENGTH,
  EndUserIdField,
} from '../usage-fields';

export const MAX_BATCH = 1000;

const tokenField = (description: string, example: number, optional = false) =>
  IntField({ description: `${description} (a non-negative integer)`, example, min: 0, max: Number.MAX_SAFE_INTEGER, optional });

/** One completion record as the gateway reports it (SPEC §3.1). */
@ApiSchema({ name: 'CompletionRecord' })
export class IngestRecordDto {
  @StringField({
    description: "The gateway's request id; unique per org (a record whose id is already stored is skipped)",
    example: 'chatcmpl-9x8Yq2LmQ4',
    maxLength: RECORD_ID_MAX_LENGTH,
    pattern: PRINTABLE_PATTERN,
    patternMessage: 'must be printable ASCII characters without spaces',
  })
  id: string;

  @StringField({ description: 'The API key that made the request; the org and team come from it', example: 'key_abc123', maxLength: 40, pattern: ID_PATTERN })
  api_key_id: string;

  @StringField({ description: "Optional: must equal the key's org", example: 'org_3ZkQ9mW2pL8xYc4RtV7bN1sD', maxLength: 40, pattern: ID_PATTERN, optional: true })
  org_id?: string;

  @StringField({
    description: 'Model name',
    example: 'meetkai:functionary-urdu-mini-pak',
    maxLength: MODEL_MAX_LENGTH,
    pattern: PRINTABLE_PATTERN,
    patternMessage: 'must be printable ASCII characters without spaces',
  })
  model: string;

  @tokenField('Input tokens, cached ones included', 1200)
  input_tokens: number;

  @tokenField('Output tokens', 300)
  output_tokens: number;

  @tokenField('Cached input tokens, at most input_tokens; default 0', 200, true)
  @Check(
    'notAboveInputTokens',
    (value, record) => typeof value !== 'number' || typeof (record as IngestRecordDto).input_tokens !== 'number' || value <= (record as IngestRecordDto).input_tokens,
    'must not be greater than input_tokens',
  )
  input_cached_tokens?: number;

  @tokenField('Audio input tokens; default 0', 0, true)
  input_audio_tokens?: number;

  @tokenField('Audio output tokens; default 0', 0, true)
  output_audio_tokens?: number;

  @EndUserIdField({ description: 'The external end user (X-On-Behalf-Of of the original request): 1-150 printable ASCII characters, not `*`', optional: true, nullable: true })
  user_id?: string | null;

  @StringField({ description: 'Project', example: 'proj_search', maxLength: PROJECT_ID_MAX_LENGTH, optional: true, nullable: true })
  project_id?: string | null;

  @BoolField({ description: 'Whether the request was part of a batch job; default false', example: false, optional: true })
  batch?: boolean;

  @StringField({ description: 'Service tier', example: 'default', maxLength: SERVICE_TIER_MAX_LENGTH, optional: true, nullable: true })
  service_tier?: string | null;

  @BigIntField({
    description: 'Cost in nano-units of the cluster currency (1e9 per major unit). Omit it to price the record from the price book at ingest.',
    example: '5250000',
    max: MAX_BIGINT,
    optional: true,
  })
  cost_nano?: number | string;

  @StringField({
    description: 'The reservation this completion was reserved by (POST /api/v1/llm/budgets/reservations): storing the record settles it once',
    example: 'res_7mQ2xLp9RkT4vW8cY3nB6sDa',
    maxLength: 40,
    pattern: ID_PATTERN,
    optional: true,
    nullable: true,
  })
  reservation_id?: string | null;

  @IntField({ description: 'When the completion happened (Unix seconds; from 2000-01-01, at most one day ahead)', example: 1704067200, min: EARLIEST_RECORD_TIME })
  @Check(
    'notFarInFuture',
    (value) => typeof value !== 'number' || value <= Date.now() / 1000 + MAX_FUTURE_SKEW_SECONDS,
    'must not be more than one day in the future',
  )
  created_at: number;
}

@ApiSchema({ name: 'IngestRecordsRequest' })
export class IngestRecordsDto {
  @ApiProperty({ type: [IngestRecordDto], minItems: 1, maxItems: MAX_BATCH, description: `1 to ${MAX_BATCH} completion records` })
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(MAX_BATCH)
  @ValidateNested({ each: true })
  @Type(() => IngestRecordDto)
  records: IngestRecordDto[];
}

@ApiSchema({ name: 'IngestResult' })
export class IngestResultDto {
  @ApiProperty({ enum: ['usage.records.ingest'], example: 'usage.records.ingest' })
  object: 'usage.records.ingest';

  @ApiProperty({ type: 'integer', example: 998, description: 'Records stored by this request' })
  accepted: number;

  @ApiProperty({ type: 'integer', example: 2, description: 'Records skipped because their id was already stored (or repeated in the batch)' })
  duplicates: number;
}

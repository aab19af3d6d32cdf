import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

/**
 * Per-bucket sums of completion records, folded in from the rollup journal by the worker (readers
 * add the journal's pending rows: see rollup-journal.ts) so usage
 * and cost queries read a bounded number of rows whatever the number of records. One row per
 * bucket and combination of dimensions; nullable dimensions are stored as '' so that the primary
 * key can serve the upserts (`''` ↔ null at the API edge). The per-key rollups have every
 * dimension but the end user (see ROLLUPS in rollups.ts).
 */
abstract class UsageRollupKeyColumns {
  @PrimaryColumn({ name: 'org_id', type: 'varchar', length: 40 })
  orgId: string;

  @PrimaryColumn({ name: 'bucket_start', type: 'timestamptz' })
  bucketStart: Date;

  @PrimaryColumn({ name: 'api_key_id', type: 'varchar', length: 40 })
  apiKeyId: string;

  @PrimaryColumn({ name: 'team_id', type: 'varchar', length: 128 })
  teamId: string;

  @PrimaryColumn({ type: 'varchar', length: 200 })
  model: string;

  @PrimaryColumn({ name: 'project_id', type: 'varchar', length: 128 })
  projectId: string;

  @PrimaryColumn({ type: 'boolean' })
  batch: boolean;

  @PrimaryColumn({ name: 'service_tier', type: 'varchar', length: 64 })
  serviceTier: string;

  @Column({ name: 'input_tokens', type: 'bigint', default: 0 })
  inputTokens: string;

  @Column({ name: 'output_tokens', type: 'bigint', default: 0 })
  outputTokens: string;

  @Column({ name: 'input_cached_tokens', type: 'bigint', default: 0 })
  inputCachedTokens: string;

  @Column({ name: 'input_audio_tokens', type: 'bigint', default: 0 })
  inputAudioTokens: string;

  @Column({ name: 'output_audio_tokens', type: 'bigint', default: 0 })
  outputAudioTokens: string;

  @Column({ name: 'num_model_requests', type: 'bigint', default: 0 })
  numModelRequests: string;

  @Column({ name: 'cost_nano', type: 'bigint', default: 0 })
  costNano: string;

  /** Records in this row that had no price (their cost_nano is 0): costs list their models. */
  @Column({ name: 'unpriced_requests', type: 'bigint', default: 0 })
  unpricedRequests: string;
}

abstract class UsageRollupColumns extends UsageRollupKeyColumns {
  @PrimaryColumn({ name: 'user_id', type: 'varchar', length: 150 })
  userId: string;
}

@Entity({ name: 'usage_rollups_minute' })
@Index('usage_rollups_minute_key_idx', ['orgId', 'apiKeyId', 'bucketStart'])
@Index('usage_rollups_minute_bucket_idx', ['bucketStart'])
export class UsageRollupMinute extends UsageRollupColumns {}

@Entity({ name: 'usage_rollups_hour' })
@Index('usage_rollups_hour_key_idx', ['orgId', 'apiKeyId', 'bucketStart'])
@Index('usage_rollups_hour_bucket_idx', ['bucketStart'])
export class UsageRollupHour extends UsageRollupColumns {}

@Entity({ name: 'usage_rollups_day' })
@Index('usage_rollups_day_key_idx', ['orgId', 'apiKeyId', 'bucketStart'])
@Index('usage_rollups_day_bucket_idx', ['bucketStart'])
export class UsageRollupDay extends UsageRollupColumns {}

@Entity({ name: 'usage_rollups_hour_by_key' })
@Index('usage_rollups_hour_by_key_key_idx', ['orgId', 'apiKeyId', 'bucketStart'])
@Index('usage_rollups_hour_by_key_bucket_idx', ['bucketStart'])
export class UsageRollupHourByKey extends UsageRollupKeyColumns {}

@Entity({ name: 'usage_rollups_day_by_key' })
@Index('usage_rollups_day_by_key_key_idx', ['orgId', 'apiKeyId', 'bucketStart'])
@Index('usage_rollups_day_by_key_bucket_idx', ['bucketStart'])
export class UsageRollupDayByKey extends UsageRollupKeyColumns {}

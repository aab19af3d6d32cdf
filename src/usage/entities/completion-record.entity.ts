import { Check, Column, CreateDateColumn, Entity, Index, PrimaryColumn } from 'typeorm';

/**
 * One chat completion served by the gateway (SPEC §3.1, the ChatCompletion table): the source of
 * truth that the rollups are built from. Idempotent on (org_id, id). Token counts and cost are
 * `bigint` (read back as strings).
 */
@Entity({ name: 'completion_records' })
@Index('completion_records_org_time_idx', ['orgId', 'createdAt'])
@Index('completion_records_time_idx', ['createdAt'])
@Check(
  'completion_records_amounts_check',
  `"input_tokens" >= 0 AND "output_tokens" >= 0 AND "input_cached_tokens" >= 0 AND "input_cached_tokens" <= "input_tokens" ` +
    `AND "input_audio_tokens" >= 0 AND "output_audio_tokens" >= 0 AND "cost_nano" >= 0`,
)
export class CompletionRecord {
  @PrimaryColumn({ name: 'org_id', type: 'varchar', length: 40 })
  orgId: string;

  /** The gateway's request id (e.g. `chatcmpl-…`), unique per org. */
  @PrimaryColumn({ type: 'varchar', length: 200 })
  id: string;

  @Column({ name: 'api_key_id', type: 'varchar', length: 40 })
  apiKeyId: string;

  /** Copied from the key at ingest. */
  @Column({ name: 'team_id', type: 'varchar', length: 128, nullable: true })
  teamId: string | null;

  /** The external end user (X-On-Behalf-Of of the original request). */
  @Column({ name: 'user_id', type: 'varchar', length: 150, nullable: true })
  userId: string | null;

  @Column({ name: 'project_id', type: 'varchar', length: 128, nullable: true })
  projectId: string | null;

  @Column({ type: 'varchar', length: 200 })
  model: string;

  @Column({ name: 'input_tokens', type: 'bigint' })
  inputTokens: string;

  @Column({ name: 'output_tokens', type: 'bigint' })
  outputTokens: string;

  @Column({ name: 'input_cached_tokens', type: 'bigint' })
  inputCachedTokens: string;

  @Column({ name: 'input_audio_tokens', type: 'bigint' })
  inputAudioTokens: string;

  @Column({ name: 'output_audio_tokens', type: 'bigint' })
  outputAudioTokens: string;

  @Column({ type: 'boolean' })
  batch: boolean;

  @Column({ name: 'service_tier', type: 'varchar', length: 64, nullable: true })
  serviceTier: string | null;

  /** Nano-units of the cluster currency: as sent, or priced from the price book at ingest. */
  @Column({ name: 'cost_nano', type: 'bigint' })
  costNano: string;

  /** True when no cost was sent and the price book had no price for the model at `created_at`. */
  @Column({ type: 'boolean' })
  unpriced: boolean;

  /** When the completion happened; the partition key, hence in the primary key (see docs/scale.md). */
  @PrimaryColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;

  @CreateDateColumn({ name: 'ingested_at', type: 'timestamptz' })
  ingestedAt: Date;
}

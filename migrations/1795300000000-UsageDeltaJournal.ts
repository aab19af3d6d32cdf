import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The journal of pending rollup deltas (SPEC §8, issue 13): ingest appends per-minute sums here
 * (no unique key, so concurrent batches never wait on each other), and the worker's folder moves
 * them into the rollups in bulk. Not a TypeORM entity: it has no primary key by design.
 */
export class UsageDeltaJournal1795300000000 implements MigrationInterface {
  name = 'UsageDeltaJournal1795300000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE TABLE "usage_rollup_deltas" ("org_id" character varying(40) NOT NULL, "bucket_start" TIMESTAMP WITH TIME ZONE NOT NULL,
        "api_key_id" character varying(40) NOT NULL, "team_id" character varying(128) NOT NULL, "user_id" character varying(150) NOT NULL,
        "model" character varying(200) NOT NULL, "project_id" character varying(128) NOT NULL, "batch" boolean NOT NULL,
        "service_tier" character varying(64) NOT NULL, "input_tokens" bigint NOT NULL, "output_tokens" bigint NOT NULL,
        "input_cached_tokens" bigint NOT NULL, "input_audio_tokens" bigint NOT NULL, "output_audio_tokens" bigint NOT NULL,
        "num_model_requests" bigint NOT NULL, "cost_nano" bigint NOT NULL, "unpriced_requests" bigint NOT NULL,
        "ingested_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT clock_timestamp())`,
    );
    await queryRunner.query(`CREATE INDEX "usage_rollup_deltas_org_time_idx" ON "usage_rollup_deltas" ("org_id", "bucket_start")`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE "usage_rollup_deltas"`);
  }
}

import { MigrationInterface, QueryRunner } from 'typeorm';

export class UsageRollupsByKey1795298831442 implements MigrationInterface {
  name = 'UsageRollupsByKey1795298831442';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`CREATE TABLE "usage_rollups_hour_by_key" ("org_id" character varying(40) NOT NULL, "bucket_start" TIMESTAMP WITH TIME ZONE NOT NULL, "api_key_id" character varying(40) NOT NULL, "team_id" character varying(128) NOT NULL, "model" character varying(200) NOT NULL, "project_id" character varying(128) NOT NULL, "batch" boolean NOT NULL, "service_tier" character varying(64) NOT NULL, "input_tokens" bigint NOT NULL DEFAULT '0', "output_tokens" bigint NOT NULL DEFAULT '0', "input_cached_tokens" bigint NOT NULL DEFAULT '0', "input_audio_tokens" bigint NOT NULL DEFAULT '0', "output_audio_tokens" bigint NOT NULL DEFAULT '0', "num_model_requests" bigint NOT NULL DEFAULT '0', "cost_nano" bigint NOT NULL DEFAULT '0', "unpriced_requests" bigint NOT NULL DEFAULT '0', CONSTRAINT "PK_3684e1cb5572efe122bdca46d04" PRIMARY KEY ("org_id", "bucket_start", "api_key_id", "team_id", "model", "project_id", "batch", "service_tier"))`);
    await queryRunner.query(`CREATE INDEX "usage_rollups_hour_by_key_bucket_idx" ON "usage_rollups_hour_by_key"  ("bucket_start") `);
    await queryRunner.query(`CREATE INDEX "usage_rollups_hour_by_key_key_idx" ON "usage_rollups_hour_by_key"  ("org_id", "api_key_id", "bucket_start") `);
    await queryRunner.query(`CREATE TABLE "usage_rollups_day_by_key" ("org_id" character varying(40) NOT NULL, "bucket_start" TIMESTAMP WITH TIME ZONE NOT NULL, "api_key_id" character varying(40) NOT NULL, "team_id" character varying(128) NOT NULL, "model" character varying(200) NOT NULL, "project_id" character varying(128) NOT NULL, "batch" boolean NOT NULL, "service_tier" character varying(64) NOT NULL, "input_tokens" bigint NOT NULL DEFAULT '0', "output_tokens" bigint NOT NULL DEFAULT '0', "input_cached_tokens" bigint NOT NULL DEFAULT '0', "input_audio_tokens" bigint NOT NULL DEFAULT '0', "output_audio_tokens" bigint NOT NULL DEFAULT '0', "num_model_requests" bigint NOT NULL DEFAULT '0', "cost_nano" bigint NOT NULL DEFAULT '0', "unpriced_requests" bigint NOT NULL DEFAULT '0', CONSTRAINT "PK_f1d3f48d715f00d0439a2db9bac" PRIMARY KEY ("org_id", "bucket_start", "api_key_id", "team_id", "model", "project_id", "batch", "service_tier"))`);
    await queryRunner.query(`CREATE INDEX "usage_rollups_day_by_key_bucket_idx" ON "usage_rollups_day_by_key"  ("bucket_start") `);
    await queryRunner.query(`CREATE INDEX "usage_rollups_day_by_key_key_idx" ON "usage_rollups_day_by_key"  ("org_id", "api_key_id", "bucket_start") `);
    // Existing usage: the per-key rows are the per-user rows summed over users.
    for (const granularity of ['hour', 'day']) {
      await queryRunner.query(
        `INSERT INTO "usage_rollups_${granularity}_by_key" ("org_id", "bucket_start", "api_key_id", "team_id", "model", "project_id", "batch", "service_tier",
           "input_tokens", "output_tokens", "input_cached_tokens", "input_audio_tokens", "output_audio_tokens", "num_model_requests", "cost_nano", "unpriced_requests")
         SELECT "org_id", "bucket_start", "api_key_id", "team_id", "model", "project_id", "batch", "service_tier",
           SUM("input_tokens"), SUM("output_tokens"), SUM("input_cached_tokens"), SUM("input_audio_tokens"), SUM("output_audio_tokens"),
           SUM("num_model_requests"), SUM("cost_nano"), SUM("unpriced_requests")
         FROM "usage_rollups_${granularity}" GROUP BY 1, 2, 3, 4, 5, 6, 7, 8`,
      );
    }
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX "public"."usage_rollups_day_by_key_key_idx"`);
    await queryRunner.query(`DROP INDEX "public"."usage_rollups_day_by_key_bucket_idx"`);
    await queryRunner.query(`DROP TABLE "usage_rollups_day_by_key"`);
    await queryRunner.query(`DROP INDEX "public"."usage_rollups_hour_by_key_key_idx"`);
    await queryRunner.query(`DROP INDEX "public"."usage_rollups_hour_by_key_bucket_idx"`);
    await queryRunner.query(`DROP TABLE "usage_rollups_hour_by_key"`);
  }
}

import { MigrationInterface, QueryRunner } from 'typeorm';

export class Usage1795296445061 implements MigrationInterface {
  name = 'Usage1795296445061';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`CREATE TABLE "completion_records" ("org_id" character varying(40) NOT NULL, "id" character varying(200) NOT NULL, "api_key_id" character varying(40) NOT NULL, "team_id" character varying(128), "user_id" character varying(150), "project_id" character varying(128), "model" character varying(200) NOT NULL, "input_tokens" bigint NOT NULL, "output_tokens" bigint NOT NULL, "input_cached_tokens" bigint NOT NULL, "input_audio_tokens" bigint NOT NULL, "output_audio_tokens" bigint NOT NULL, "batch" boolean NOT NULL, "service_tier" character varying(64), "cost_nano" bigint NOT NULL, "unpriced" boolean NOT NULL, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL, "ingested_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "completion_records_amounts_check" CHECK ("input_tokens" >= 0 AND "output_tokens" >= 0 AND "input_cached_tokens" >= 0 AND "input_cached_tokens" <= "input_tokens" AND "input_audio_tokens" >= 0 AND "output_audio_tokens" >= 0 AND "cost_nano" >= 0), CONSTRAINT "PK_a2a9b9e79aa782a83c9faebfcf7" PRIMARY KEY ("org_id", "id"))`);
    await queryRunner.query(`CREATE INDEX "completion_records_time_idx" ON "completion_records"  ("created_at") `);
    await queryRunner.query(`CREATE INDEX "completion_records_org_time_idx" ON "completion_records"  ("org_id", "created_at") `);
    await queryRunner.query(`CREATE TABLE "model_prices" ("model" character varying(200) NOT NULL, "effective_from" TIMESTAMP WITH TIME ZONE NOT NULL, "input_per_mtok_nano" bigint NOT NULL, "cached_input_per_mtok_nano" bigint NOT NULL, "output_per_mtok_nano" bigint NOT NULL, "created_by" character varying(40), "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "PK_25eb3fc46fca3417d7927c2802d" PRIMARY KEY ("model", "effective_from"))`);
    await queryRunner.query(`CREATE TABLE "usage_rollups_minute" ("org_id" character varying(40) NOT NULL, "bucket_start" TIMESTAMP WITH TIME ZONE NOT NULL, "api_key_id" character varying(40) NOT NULL, "team_id" character varying(128) NOT NULL, "user_id" character varying(150) NOT NULL, "model" character varying(200) NOT NULL, "project_id" character varying(128) NOT NULL, "batch" boolean NOT NULL, "service_tier" character varying(64) NOT NULL, "input_tokens" bigint NOT NULL DEFAULT '0', "output_tokens" bigint NOT NULL DEFAULT '0', "input_cached_tokens" bigint NOT NULL DEFAULT '0', "input_audio_tokens" bigint NOT NULL DEFAULT '0', "output_audio_tokens" bigint NOT NULL DEFAULT '0', "num_model_requests" bigint NOT NULL DEFAULT '0', "cost_nano" bigint NOT NULL DEFAULT '0', "unpriced_requests" bigint NOT NULL DEFAULT '0', CONSTRAINT "PK_a1c8328174532528f8adcc6caeb" PRIMARY KEY ("org_id", "bucket_start", "api_key_id", "team_id", "user_id", "model", "project_id", "batch", "service_tier"))`);
    await queryRunner.query(`CREATE INDEX "usage_rollups_minute_bucket_idx" ON "usage_rollups_minute"  ("bucket_start") `);
    await queryRunner.query(`CREATE INDEX "usage_rollups_minute_key_idx" ON "usage_rollups_minute"  ("org_id", "api_key_id", "bucket_start") `);
    await queryRunner.query(`CREATE TABLE "usage_rollups_hour" ("org_id" character varying(40) NOT NULL, "bucket_start" TIMESTAMP WITH TIME ZONE NOT NULL, "api_key_id" character varying(40) NOT NULL, "team_id" character varying(128) NOT NULL, "user_id" character varying(150) NOT NULL, "model" character varying(200) NOT NULL, "project_id" character varying(128) NOT NULL, "batch" boolean NOT NULL, "service_tier" character varying(64) NOT NULL, "input_tokens" bigint NOT NULL DEFAULT '0', "output_tokens" bigint NOT NULL DEFAULT '0', "input_cached_tokens" bigint NOT NULL DEFAULT '0', "input_audio_tokens" bigint NOT NULL DEFAULT '0', "output_audio_tokens" bigint NOT NULL DEFAULT '0', "num_model_requests" bigint NOT NULL DEFAULT '0', "cost_nano" bigint NOT NULL DEFAULT '0', "unpriced_requests" bigint NOT NULL DEFAULT '0', CONSTRAINT "PK_9dfc9db576e56d95129e6bc3cd1" PRIMARY KEY ("org_id", "bucket_start", "api_key_id", "team_id", "user_id", "model", "project_id", "batch", "service_tier"))`);
    await queryRunner.query(`CREATE INDEX "usage_rollups_hour_bucket_idx" ON "usage_rollups_hour"  ("bucket_start") `);
    await queryRunner.query(`CREATE INDEX "usage_rollups_hour_key_idx" ON "usage_rollups_hour"  ("org_id", "api_key_id", "bucket_start") `);
    await queryRunner.query(`CREATE TABLE "usage_rollups_day" ("org_id" character varying(40) NOT NULL, "bucket_start" TIMESTAMP WITH TIME ZONE NOT NULL, "api_key_id" character varying(40) NOT NULL, "team_id" character varying(128) NOT NULL, "user_id" character varying(150) NOT NULL, "model" character varying(200) NOT NULL, "project_id" character varying(128) NOT NULL, "batch" boolean NOT NULL, "service_tier" character varying(64) NOT NULL, "input_tokens" bigint NOT NULL DEFAULT '0', "output_tokens" bigint NOT NULL DEFAULT '0', "input_cached_tokens" bigint NOT NULL DEFAULT '0', "input_audio_tokens" bigint NOT NULL DEFAULT '0', "output_audio_tokens" bigint NOT NULL DEFAULT '0', "num_model_requests" bigint NOT NULL DEFAULT '0', "cost_nano" bigint NOT NULL DEFAULT '0', "unpriced_requests" bigint NOT NULL DEFAULT '0', CONSTRAINT "PK_43641f3ddd71eab961aa4c06bc1" PRIMARY KEY ("org_id", "bucket_start", "api_key_id", "team_id", "user_id", "model", "project_id", "batch", "service_tier"))`);
    await queryRunner.query(`CREATE INDEX "usage_rollups_day_bucket_idx" ON "usage_rollups_day"  ("bucket_start") `);
    await queryRunner.query(`CREATE INDEX "usage_rollups_day_key_idx" ON "usage_rollups_day"  ("org_id", "api_key_id", "bucket_start") `);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX "public"."usage_rollups_day_key_idx"`);
    await queryRunner.query(`DROP INDEX "public"."usage_rollups_day_bucket_idx"`);
    await queryRunner.query(`DROP TABLE "usage_rollups_day"`);
    await queryRunner.query(`DROP INDEX "public"."usage_rollups_hour_key_idx"`);
    await queryRunner.query(`DROP INDEX "public"."usage_rollups_hour_bucket_idx"`);
    await queryRunner.query(`DROP TABLE "usage_rollups_hour"`);
    await queryRunner.query(`DROP INDEX "public"."usage_rollups_minute_key_idx"`);
    await queryRunner.query(`DROP INDEX "public"."usage_rollups_minute_bucket_idx"`);
    await queryRunner.query(`DROP TABLE "usage_rollups_minute"`);
    await queryRunner.query(`DROP TABLE "model_prices"`);
    await queryRunner.query(`DROP INDEX "public"."completion_records_org_time_idx"`);
    await queryRunner.query(`DROP INDEX "public"."completion_records_time_idx"`);
    await queryRunner.query(`DROP TABLE "completion_records"`);
  }
}

import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Rollup groups held out of the folds (see src/usage/rollup-held-groups.ts). A group is the key
 * of `usage_rollups_day_by_key` (an org's UTC day, key, team, model, project, batch and tier)
 * whose sums would overflow a rollup's bigint; the folder moves its journal rows into
 * `usage_rollup_deltas_held` instead of the rollups, and readers add those rows as they add the
 * journal's. Not TypeORM entities, like the journal itself: the held rows have no primary key by
 * design, and the folder and readers reach both tables only through SQL.
 */
export class RollupHeldGroups1796112000000 implements MigrationInterface {
  name = 'RollupHeldGroups1796112000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE TABLE "usage_rollup_held_groups" ("org_id" character varying(40) NOT NULL, "bucket_start" TIMESTAMP WITH TIME ZONE NOT NULL,
        "api_key_id" character varying(40) NOT NULL, "team_id" character varying(128) NOT NULL, "model" character varying(200) NOT NULL,
        "project_id" character varying(128) NOT NULL, "batch" boolean NOT NULL, "service_tier" character varying(64) NOT NULL,
        "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
        CONSTRAINT "usage_rollup_held_groups_pkey" PRIMARY KEY ("org_id", "bucket_start", "api_key_id", "team_id", "model", "project_id", "batch", "service_tier"))`,
    );
    // The journal's columns, defaults and all (ingested_at keeps each row's age): rows move between the two as they are.
    await queryRunner.query(`CREATE TABLE "usage_rollup_deltas_held" (LIKE "usage_rollup_deltas" INCLUDING DEFAULTS)`);
    await queryRunner.query(`CREATE INDEX "usage_rollup_deltas_held_org_time_idx" ON "usage_rollup_deltas_held" ("org_id", "bucket_start")`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    // Held rows are pending usage: back into the journal, where the folder finds them (and fails on
    // them as it did before this migration).
    await queryRunner.query(`INSERT INTO "usage_rollup_deltas" SELECT * FROM "usage_rollup_deltas_held"`);
    await queryRunner.query(`DROP TABLE "usage_rollup_deltas_held"`);
    await queryRunner.query(`DROP TABLE "usage_rollup_held_groups"`);
  }
}

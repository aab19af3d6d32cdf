import { MigrationInterface, QueryRunner } from 'typeorm';

export class ResolvedEvents1796105904974 implements MigrationInterface {
  name = 'ResolvedEvents1796105904974';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX "public"."alerts_budget_window_pct_key"`);
    await queryRunner.query(`ALTER TABLE "alerts" ADD "event_type" character varying(40) NOT NULL DEFAULT 'budget.threshold.crossed'`);
    await queryRunner.query(`CREATE UNIQUE INDEX "alerts_budget_window_pct_key" ON "alerts"  ("org_id", "budget_id", "window_start", "threshold_pct", "event_type") `);
    await queryRunner.query(`ALTER TABLE "alerts" ADD CONSTRAINT "alerts_event_type_check" CHECK ("event_type" IN ('budget.threshold.crossed', 'budget.threshold.resolved'))`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "alerts" DROP CONSTRAINT "alerts_event_type_check"`);
    await queryRunner.query(`DROP INDEX "public"."alerts_budget_window_pct_key"`);
    await queryRunner.query(`ALTER TABLE "alerts" DROP COLUMN "event_type"`);
    await queryRunner.query(`CREATE UNIQUE INDEX "alerts_budget_window_pct_key" ON "alerts" ("org_id", "budget_id", "window_start", "threshold_pct") `);
  }
}

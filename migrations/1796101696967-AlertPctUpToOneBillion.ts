import { MigrationInterface, QueryRunner } from 'typeorm';

export class AlertPctUpToOneBillion1796101696967 implements MigrationInterface {
  name = 'AlertPctUpToOneBillion1796101696967';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX "public"."alerts_budget_window_pct_key"`);
    await queryRunner.query(`ALTER TABLE "alerts" ALTER COLUMN "threshold_pct" TYPE numeric(16,6)`);
    await queryRunner.query(`CREATE UNIQUE INDEX "alerts_budget_window_pct_key" ON "alerts"  ("budget_id", "window_start", "threshold_pct") `);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX "public"."alerts_budget_window_pct_key"`);
    await queryRunner.query(`ALTER TABLE "alerts" ALTER COLUMN "threshold_pct" TYPE numeric(10,6)`);
    await queryRunner.query(`CREATE UNIQUE INDEX "alerts_budget_window_pct_key" ON "alerts" USING btree ("budget_id", "window_start", "threshold_pct") `);
  }
}

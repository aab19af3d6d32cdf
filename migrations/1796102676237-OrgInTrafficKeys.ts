import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * SPEC §8: every primary and unique key of a table that grows with traffic includes org_id, and so
 * does a foreign key between two of them (a Citus-distributed table is keyed by its distribution
 * column). Alerts and webhook deliveries get the org of their budget.
 */
export class OrgInTrafficKeys1796102676237 implements MigrationInterface {
  name = 'OrgInTrafficKeys1796102676237';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "webhook_deliveries" DROP CONSTRAINT "FK_9623661c357591841e55a4863fd"`);
    await queryRunner.query(`DROP INDEX "public"."alerts_budget_window_pct_key"`);
    await queryRunner.query(`DROP INDEX "public"."webhook_deliveries_alert_idx"`);
    // Existing rows take their budget's org (an alert never outlives its budget: ON DELETE CASCADE).
    await queryRunner.query(`ALTER TABLE "alerts" ADD "org_id" character varying(40)`);
    await queryRunner.query(`UPDATE "alerts" a SET "org_id" = b."org_id" FROM "budgets" b WHERE b."id" = a."budget_id"`);
    await queryRunner.query(`ALTER TABLE "alerts" ALTER COLUMN "org_id" SET NOT NULL`);
    await queryRunner.query(`ALTER TABLE "alerts" DROP CONSTRAINT "PK_60f895662df096bfcdfab7f4b96"`);
    await queryRunner.query(`ALTER TABLE "alerts" ADD CONSTRAINT "PK_6b9dfed81b4246184b58c229c5c" PRIMARY KEY ("id", "org_id")`);
    await queryRunner.query(`ALTER TABLE "webhook_deliveries" ADD "org_id" character varying(40)`);
    await queryRunner.query(`UPDATE "webhook_deliveries" d SET "org_id" = a."org_id" FROM "alerts" a WHERE a."id" = d."alert_id"`);
    await queryRunner.query(`ALTER TABLE "webhook_deliveries" ALTER COLUMN "org_id" SET NOT NULL`);
    await queryRunner.query(`ALTER TABLE "webhook_deliveries" DROP CONSTRAINT "PK_535dd409947fb6d8fc6dfc0112a"`);
    await queryRunner.query(`ALTER TABLE "webhook_deliveries" ADD CONSTRAINT "PK_a5599265be95b1cedbb671f3833" PRIMARY KEY ("id", "org_id")`);
    await queryRunner.query(`CREATE UNIQUE INDEX "alerts_budget_window_pct_key" ON "alerts"  ("org_id", "budget_id", "window_start", "threshold_pct") `);
    await queryRunner.query(`CREATE INDEX "webhook_deliveries_alert_idx" ON "webhook_deliveries"  ("org_id", "alert_id") `);
    await queryRunner.query(`ALTER TABLE "webhook_deliveries" ADD CONSTRAINT "FK_d21e198d973c3e264da1ba15009" FOREIGN KEY ("org_id", "alert_id") REFERENCES "alerts"("org_id","id") ON DELETE CASCADE ON UPDATE NO ACTION`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "webhook_deliveries" DROP CONSTRAINT "FK_d21e198d973c3e264da1ba15009"`);
    await queryRunner.query(`DROP INDEX "public"."webhook_deliveries_alert_idx"`);
    await queryRunner.query(`DROP INDEX "public"."alerts_budget_window_pct_key"`);
    await queryRunner.query(`ALTER TABLE "webhook_deliveries" DROP CONSTRAINT "PK_a5599265be95b1cedbb671f3833"`);
    await queryRunner.query(`ALTER TABLE "webhook_deliveries" ADD CONSTRAINT "PK_535dd409947fb6d8fc6dfc0112a" PRIMARY KEY ("id")`);
    await queryRunner.query(`ALTER TABLE "webhook_deliveries" DROP COLUMN "org_id"`);
    await queryRunner.query(`ALTER TABLE "alerts" DROP CONSTRAINT "PK_6b9dfed81b4246184b58c229c5c"`);
    await queryRunner.query(`ALTER TABLE "alerts" ADD CONSTRAINT "PK_60f895662df096bfcdfab7f4b96" PRIMARY KEY ("id")`);
    await queryRunner.query(`ALTER TABLE "alerts" DROP COLUMN "org_id"`);
    await queryRunner.query(`CREATE INDEX "webhook_deliveries_alert_idx" ON "webhook_deliveries" USING btree ("alert_id") `);
    await queryRunner.query(`CREATE UNIQUE INDEX "alerts_budget_window_pct_key" ON "alerts" USING btree ("budget_id", "window_start", "threshold_pct") `);
    await queryRunner.query(`ALTER TABLE "webhook_deliveries" ADD CONSTRAINT "FK_9623661c357591841e55a4863fd" FOREIGN KEY ("alert_id") REFERENCES "alerts"("id") ON DELETE CASCADE ON UPDATE NO ACTION`);
  }
}

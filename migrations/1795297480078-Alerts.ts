import { MigrationInterface, QueryRunner } from 'typeorm';

export class Alerts1795297480078 implements MigrationInterface {
  name = 'Alerts1795297480078';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`CREATE TABLE "alerts" ("id" character varying(40) NOT NULL, "budget_id" character varying(40) NOT NULL, "window_start" TIMESTAMP WITH TIME ZONE NOT NULL, "window_end" TIMESTAMP WITH TIME ZONE NOT NULL, "threshold_pct" numeric(10,6) NOT NULL, "threshold_action" character varying(10) NOT NULL, "body" text NOT NULL, "state" character varying(10) NOT NULL, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL, "delivered_at" TIMESTAMP WITH TIME ZONE, CONSTRAINT "alerts_state_check" CHECK ("state" IN ('pending', 'delivered', 'failed', 'skipped')), CONSTRAINT "PK_60f895662df096bfcdfab7f4b96" PRIMARY KEY ("id"))`);
    await queryRunner.query(`CREATE INDEX "alerts_state_idx" ON "alerts"  ("state", "id") `);
    await queryRunner.query(`CREATE UNIQUE INDEX "alerts_budget_window_pct_key" ON "alerts"  ("budget_id", "window_start", "threshold_pct") `);
    await queryRunner.query(`CREATE TABLE "webhook_deliveries" ("id" character varying(40) NOT NULL, "alert_id" character varying(40) NOT NULL, "budget_id" character varying(40) NOT NULL, "trigger" character varying(12) NOT NULL, "attempt" integer NOT NULL, "status" character varying(10) NOT NULL, "url" character varying(2048), "status_code" integer, "error" character varying(500), "latency_ms" integer, "attempted_at" TIMESTAMP WITH TIME ZONE, "next_retry_at" TIMESTAMP WITH TIME ZONE, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "webhook_deliveries_trigger_check" CHECK ("trigger" IN ('alert', 'redelivery')), CONSTRAINT "webhook_deliveries_status_check" CHECK ("status" IN ('pending', 'succeeded', 'failed')), CONSTRAINT "PK_535dd409947fb6d8fc6dfc0112a" PRIMARY KEY ("id"))`);
    await queryRunner.query(`CREATE INDEX "webhook_deliveries_alert_idx" ON "webhook_deliveries"  ("alert_id") `);
    await queryRunner.query(`CREATE INDEX "webhook_deliveries_budget_idx" ON "webhook_deliveries"  ("budget_id", "created_at", "id") `);
    await queryRunner.query(`ALTER TABLE "alerts" ADD CONSTRAINT "FK_f5ab5d19e27c44a2a2f27311447" FOREIGN KEY ("budget_id") REFERENCES "budgets"("id") ON DELETE CASCADE ON UPDATE NO ACTION`);
    await queryRunner.query(`ALTER TABLE "webhook_deliveries" ADD CONSTRAINT "FK_9623661c357591841e55a4863fd" FOREIGN KEY ("alert_id") REFERENCES "alerts"("id") ON DELETE CASCADE ON UPDATE NO ACTION`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "webhook_deliveries" DROP CONSTRAINT "FK_9623661c357591841e55a4863fd"`);
    await queryRunner.query(`ALTER TABLE "alerts" DROP CONSTRAINT "FK_f5ab5d19e27c44a2a2f27311447"`);
    await queryRunner.query(`DROP INDEX "public"."webhook_deliveries_budget_idx"`);
    await queryRunner.query(`DROP INDEX "public"."webhook_deliveries_alert_idx"`);
    await queryRunner.query(`DROP TABLE "webhook_deliveries"`);
    await queryRunner.query(`DROP INDEX "public"."alerts_budget_window_pct_key"`);
    await queryRunner.query(`DROP INDEX "public"."alerts_state_idx"`);
    await queryRunner.query(`DROP TABLE "alerts"`);
  }
}

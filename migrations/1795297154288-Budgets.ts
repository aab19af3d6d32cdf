import { MigrationInterface, QueryRunner } from 'typeorm';

export class Budgets1795297154288 implements MigrationInterface {
  name = 'Budgets1795297154288';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`CREATE TABLE "budgets" ("id" character varying(40) NOT NULL, "scope" character varying(10) NOT NULL, "scope_id" character varying(40) NOT NULL, "org_id" character varying(40) NOT NULL, "owner" character varying(10) NOT NULL, "period" character varying(10) NOT NULL, "limit_kind" character varying(10) NOT NULL, "limit_value" numeric(38,9) NOT NULL, "thresholds" jsonb NOT NULL, "webhook_url" character varying(2048), "webhook_secret_sealed" bytea, "webhook_disabled_at" TIMESTAMP WITH TIME ZONE, "updated_by" character varying(40), "updated_on_behalf_of" character varying(150), "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "updated_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "budgets_limit_check" CHECK ("limit_value" > 0), CONSTRAINT "budgets_limit_kind_check" CHECK ("limit_kind" IN ('cost', 'tokens')), CONSTRAINT "budgets_period_check" CHECK ("period" IN ('daily', 'weekly', 'monthly')), CONSTRAINT "budgets_owner_check" CHECK ("owner" IN ('cluster', 'org')), CONSTRAINT "budgets_scope_check" CHECK ("scope" IN ('org', 'apikey')), CONSTRAINT "PK_9c8a51748f82387644b773da482" PRIMARY KEY ("id"))`);
    await queryRunner.query(`CREATE INDEX "budgets_org_idx" ON "budgets"  ("org_id") `);
    await queryRunner.query(`CREATE UNIQUE INDEX "budgets_scope_owner_key" ON "budgets"  ("scope", "scope_id", "owner") `);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX "public"."budgets_scope_owner_key"`);
    await queryRunner.query(`DROP INDEX "public"."budgets_org_idx"`);
    await queryRunner.query(`DROP TABLE "budgets"`);
  }
}

import { MigrationInterface, QueryRunner } from 'typeorm';

export class DeletedBudgetResolutions1796107817404 implements MigrationInterface {
  name = 'DeletedBudgetResolutions1796107817404';

  /** Alerts outlive their budget: a deletion resolves its blocks and delivers them to a copied target. */
  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "alerts" DROP CONSTRAINT "FK_f5ab5d19e27c44a2a2f27311447"`);
    await queryRunner.query(`ALTER TABLE "alerts" ADD "target_webhook_url" character varying(2048)`);
    await queryRunner.query(`ALTER TABLE "alerts" ADD "target_secret_sealed" bytea`);
    await queryRunner.query(`ALTER TABLE "alerts" ADD "target_previous_secret_sealed" bytea`);
    await queryRunner.query(`ALTER TABLE "alerts" ADD "target_previous_secret_expires_at" TIMESTAMP WITH TIME ZONE`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "alerts" DROP COLUMN "target_previous_secret_expires_at"`);
    await queryRunner.query(`ALTER TABLE "alerts" DROP COLUMN "target_previous_secret_sealed"`);
    await queryRunner.query(`ALTER TABLE "alerts" DROP COLUMN "target_secret_sealed"`);
    await queryRunner.query(`ALTER TABLE "alerts" DROP COLUMN "target_webhook_url"`);
    // The alerts of deleted budgets (and their delivery log, by its cascade) go, as they did before.
    await queryRunner.query(`DELETE FROM "alerts" a WHERE NOT EXISTS (SELECT 1 FROM "budgets" b WHERE b."id" = a."budget_id")`);
    await queryRunner.query(`ALTER TABLE "alerts" ADD CONSTRAINT "FK_f5ab5d19e27c44a2a2f27311447" FOREIGN KEY ("budget_id") REFERENCES "budgets"("id") ON DELETE CASCADE ON UPDATE NO ACTION`);
  }
}

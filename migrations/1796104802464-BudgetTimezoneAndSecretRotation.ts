import { MigrationInterface, QueryRunner } from 'typeorm';

export class BudgetTimezoneAndSecretRotation1796104802464 implements MigrationInterface {
  name = 'BudgetTimezoneAndSecretRotation1796104802464';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "budgets" ADD "timezone" character varying(100) NOT NULL DEFAULT 'UTC'`);
    await queryRunner.query(`ALTER TABLE "budgets" ADD "webhook_previous_secret_sealed" bytea`);
    await queryRunner.query(`ALTER TABLE "budgets" ADD "webhook_previous_secret_expires_at" TIMESTAMP WITH TIME ZONE`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "budgets" DROP COLUMN "webhook_previous_secret_expires_at"`);
    await queryRunner.query(`ALTER TABLE "budgets" DROP COLUMN "webhook_previous_secret_sealed"`);
    await queryRunner.query(`ALTER TABLE "budgets" DROP COLUMN "timezone"`);
  }
}

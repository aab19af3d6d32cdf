import { MigrationInterface, QueryRunner } from 'typeorm';

/** Team and end-user budgets (SPEC §4.2): two more scopes; their scope_id is `{orgId}/{id}` (up to 40 + 1 + 150). */
export class TeamAndUserBudgets1796105254662 implements MigrationInterface {
  name = 'TeamAndUserBudgets1796105254662';

  async up(queryRunner: QueryRunner): Promise<void> {
    // Widened in place (the generator would drop and re-add the column, losing every budget's scope).
    await queryRunner.query(`ALTER TABLE "budgets" ALTER COLUMN "scope_id" TYPE character varying(200)`);
    await queryRunner.query(`ALTER TABLE "budgets" DROP CONSTRAINT "budgets_scope_check"`);
    await queryRunner.query(`ALTER TABLE "budgets" ADD CONSTRAINT "budgets_scope_check" CHECK ("scope" IN ('org', 'apikey', 'team', 'user'))`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DELETE FROM "budgets" WHERE "scope" IN ('team', 'user')`);
    await queryRunner.query(`ALTER TABLE "budgets" DROP CONSTRAINT "budgets_scope_check"`);
    await queryRunner.query(`ALTER TABLE "budgets" ADD CONSTRAINT "budgets_scope_check" CHECK ("scope" IN ('org', 'apikey'))`);
    await queryRunner.query(`ALTER TABLE "budgets" ALTER COLUMN "scope_id" TYPE character varying(40)`);
  }
}

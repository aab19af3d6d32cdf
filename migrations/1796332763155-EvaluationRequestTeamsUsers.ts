import { MigrationInterface, QueryRunner } from 'typeorm';

export class EvaluationRequestTeamsUsers1796332763155 implements MigrationInterface {
  name = 'EvaluationRequestTeamsUsers1796332763155';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "budget_evaluation_requests" ADD "team_ids" text array`);
    await queryRunner.query(`ALTER TABLE "budget_evaluation_requests" ADD "user_ids" text array`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "budget_evaluation_requests" DROP COLUMN "user_ids"`);
    await queryRunner.query(`ALTER TABLE "budget_evaluation_requests" DROP COLUMN "team_ids"`);
  }
}

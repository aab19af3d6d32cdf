import { MigrationInterface, QueryRunner } from 'typeorm';

export class EvaluationBacklog1796101712392 implements MigrationInterface {
  name = 'EvaluationBacklog1796101712392';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`CREATE TABLE "budget_evaluation_requests" ("id" BIGSERIAL NOT NULL, "org_id" character varying(40) NOT NULL, "api_key_ids" character varying(40) array NOT NULL, "days" character varying(10) array NOT NULL, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "PK_12748c57432dd64161d66128d65" PRIMARY KEY ("id"))`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE "budget_evaluation_requests"`);
  }
}

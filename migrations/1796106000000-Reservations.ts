import { MigrationInterface, QueryRunner } from 'typeorm';

export class Reservations1796106000000 implements MigrationInterface {
  name = 'Reservations1796106000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`CREATE TABLE "reservations" ("org_id" character varying(40) NOT NULL, "id" character varying(40) NOT NULL, "api_key_id" character varying(40) NOT NULL, "request_id" character varying(200) NOT NULL, "user_id" character varying(150), "model" character varying(200) NOT NULL, "input_tokens" bigint NOT NULL, "max_output_tokens" bigint NOT NULL, "min_output_tokens" bigint NOT NULL, "granted_output_tokens" bigint NOT NULL, "status" character varying(10) NOT NULL, "reserved_tokens" bigint NOT NULL, "reserved_cost_nano" bigint NOT NULL, "holds" jsonb NOT NULL, "decision" jsonb NOT NULL, "expires_at" TIMESTAMP WITH TIME ZONE, "record_id" character varying(200), "settled_at" TIMESTAMP WITH TIME ZONE, "released_at" TIMESTAMP WITH TIME ZONE, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "reservations_status_check" CHECK ("status" IN ('held', 'denied', 'settled', 'released')), CONSTRAINT "PK_8f5b0082af5513686ca11e4a9bf" PRIMARY KEY ("org_id", "id"))`);
    await queryRunner.query(`CREATE INDEX "reservations_live_idx" ON "reservations"  ("org_id", "expires_at") WHERE "status" = 'held'`);
    await queryRunner.query(`CREATE INDEX "reservations_id_idx" ON "reservations"  ("id") `);
    await queryRunner.query(`CREATE UNIQUE INDEX "reservations_request_key" ON "reservations"  ("org_id", "api_key_id", "request_id") `);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX "public"."reservations_request_key"`);
    await queryRunner.query(`DROP INDEX "public"."reservations_id_idx"`);
    await queryRunner.query(`DROP INDEX "public"."reservations_live_idx"`);
    await queryRunner.query(`DROP TABLE "reservations"`);
  }
}

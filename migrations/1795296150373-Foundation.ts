import { MigrationInterface, QueryRunner } from 'typeorm';

export class Foundation1795296150373 implements MigrationInterface {
  name = 'Foundation1795296150373';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`CREATE TABLE "orgs" ("id" character varying(40) NOT NULL, "name" character varying(200) NOT NULL, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "PK_9eed8bfad4c9e0dc8648e090efe" PRIMARY KEY ("id"))`);
    await queryRunner.query(`CREATE TABLE "api_keys" ("id" character varying(40) NOT NULL, "org_id" character varying(40) NOT NULL, "name" character varying(200) NOT NULL, "role" character varying(20) NOT NULL, "team_id" character varying(128), "secret_hash" bytea NOT NULL, "secret_prefix" character varying(16) NOT NULL, "created_by" character varying(40), "created_on_behalf_of" character varying(150), "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "revoked_at" TIMESTAMP WITH TIME ZONE, CONSTRAINT "api_keys_role_check" CHECK ("role" IN ('cluster_admin', 'org_admin', 'member', 'ingest')), CONSTRAINT "PK_5c8a79801b44bd27b79228e1dad" PRIMARY KEY ("id"))`);
    await queryRunner.query(`CREATE UNIQUE INDEX "api_keys_secret_hash_key" ON "api_keys"  ("secret_hash") `);
    await queryRunner.query(`CREATE INDEX "api_keys_org_idx" ON "api_keys"  ("org_id", "created_at") `);
    await queryRunner.query(`ALTER TABLE "api_keys" ADD CONSTRAINT "FK_ba7f5748f500d24aa18041d0439" FOREIGN KEY ("org_id") REFERENCES "orgs"("id") ON DELETE RESTRICT ON UPDATE NO ACTION`);
    // The system org holds cluster_admin and ingest keys.
    await queryRunner.query(`INSERT INTO "orgs" ("id", "name") VALUES ('org_system', 'system')`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "api_keys" DROP CONSTRAINT "FK_ba7f5748f500d24aa18041d0439"`);
    await queryRunner.query(`DROP INDEX "public"."api_keys_org_idx"`);
    await queryRunner.query(`DROP INDEX "public"."api_keys_secret_hash_key"`);
    await queryRunner.query(`DROP TABLE "api_keys"`);
    await queryRunner.query(`DROP TABLE "orgs"`);
  }
}

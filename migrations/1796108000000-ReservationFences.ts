import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Fences that let an admission decide without holding a lock across its Redis call (see
 * src/reservations/admission-batches.ts): per budget target (`<scope>:<scope_id>`), the version of
 * its budgets, bumped by a trigger on every change of a budget a decision depends on; per budget,
 * the generation of its counters in Redis, bumped by every rebuild and repair.
 */
export class ReservationFences1796108000000 implements MigrationInterface {
  name = 'ReservationFences1796108000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE TABLE "reservation_fences" ("org_id" character varying(40) NOT NULL, "fence" character varying(255) NOT NULL, "value" bigint NOT NULL DEFAULT '0', CONSTRAINT "PK_reservation_fences" PRIMARY KEY ("org_id", "fence"))`,
    );
    await queryRunner.query(`CREATE FUNCTION tally_budgets_fence() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP <> 'INSERT' THEN
          INSERT INTO reservation_fences (org_id, fence, value) VALUES (OLD.org_id, OLD.scope || ':' || OLD.scope_id, 1)
          ON CONFLICT (org_id, fence) DO UPDATE SET value = reservation_fences.value + 1;
        END IF;
        IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND (NEW.org_id, NEW.scope, NEW.scope_id) IS DISTINCT FROM (OLD.org_id, OLD.scope, OLD.scope_id)) THEN
          INSERT INTO reservation_fences (org_id, fence, value) VALUES (NEW.org_id, NEW.scope || ':' || NEW.scope_id, 1)
          ON CONFLICT (org_id, fence) DO UPDATE SET value = reservation_fences.value + 1;
        END IF;
        RETURN NULL;
      END $$`);
    await queryRunner.query(
      `CREATE TRIGGER budgets_fence AFTER INSERT OR DELETE OR UPDATE OF scope, scope_id, org_id, owner, period, timezone, limit_kind, limit_value, thresholds
       ON budgets FOR EACH ROW EXECUTE FUNCTION tally_budgets_fence()`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TRIGGER "budgets_fence" ON "budgets"`);
    await queryRunner.query(`DROP FUNCTION tally_budgets_fence()`);
    await queryRunner.query(`DROP TABLE "reservation_fences"`);
  }
}

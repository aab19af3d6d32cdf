import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `budgets.counter_epoch` names a budget's reservation counters in Redis and is moved forward, by a
 * trigger, by any change of what they count: the window (period, time zone), the unit (limit
 * kind), or whether a threshold blocks (while none does, ingest does not keep the counters). Kept
 * under one name, counters loaded before such a change were read after it: a tokens sum read as
 * nano-units, or a committed sum that missed the spend of the time the budget did not block (an
 * overshoot of the cap, found by a review). Live holds are moved to the new epoch by the PUT that
 * changes it (src/reservations/reservation-redefinitions.ts).
 */
export class BudgetCounterEpoch1796110000000 implements MigrationInterface {
  name = 'BudgetCounterEpoch1796110000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "budgets" ADD "counter_epoch" bigint NOT NULL DEFAULT '0'`);
    await queryRunner.query(`CREATE FUNCTION tally_budgets_counter_epoch() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF (NEW.period, NEW.timezone, NEW.limit_kind, jsonb_path_exists(NEW.thresholds, '$[*] ? (@.action == "block")'))
           IS DISTINCT FROM (OLD.period, OLD.timezone, OLD.limit_kind, jsonb_path_exists(OLD.thresholds, '$[*] ? (@.action == "block")')) THEN
          NEW.counter_epoch := OLD.counter_epoch + 1;
        END IF;
        RETURN NEW;
      END $$`);
    await queryRunner.query(
      `CREATE TRIGGER budgets_counter_epoch BEFORE UPDATE OF period, timezone, limit_kind, thresholds ON budgets FOR EACH ROW EXECUTE FUNCTION tally_budgets_counter_epoch()`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TRIGGER "budgets_counter_epoch" ON "budgets"`);
    await queryRunner.query(`DROP FUNCTION tally_budgets_counter_epoch()`);
    await queryRunner.query(`ALTER TABLE "budgets" DROP COLUMN "counter_epoch"`);
  }
}

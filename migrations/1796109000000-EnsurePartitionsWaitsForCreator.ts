import { MigrationInterface, QueryRunner } from 'typeorm';
import { ENSURE_PARTITIONS_FUNCTION } from './1795300100000-PartitionRecordsByMonth';

/**
 * `tally_ensure_partitions` takes each month's lock before it looks for the partition, also when
 * the partition is there already, and under a lock class of its own (7240119; it shared 7240118
 * with the reservations' per-org locks).
 *
 * Why: PostgreSQL makes a committed CREATE TABLE + ATTACH PARTITION visible to other sessions
 * before the committing session has sent the invalidations of the parent's cached partition list;
 * its locks go last. A session whose insert found no partition, and whose ensure call returned at
 * once because the table was visible, could retry with its stale list and miss the partition
 * again, three times in a row (a 500 in CI under load). Waiting for the creator's lock means its
 * invalidations are out, so the retry's transaction sees the new partition.
 */
export class EnsurePartitionsWaitsForCreator1796109000000 implements MigrationInterface {
  name = 'EnsurePartitionsWaitsForCreator1796109000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(ENSURE_PARTITIONS_WAITING);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(ENSURE_PARTITIONS_FUNCTION);
  }
}

/** Creates the missing monthly partitions `<parent>_pYYYYMM` of the months holding `months` (UTC). */
export const ENSURE_PARTITIONS_WAITING = `
CREATE OR REPLACE FUNCTION tally_ensure_partitions(parent text, months timestamptz[]) RETURNS int LANGUAGE plpgsql AS $fn$
DECLARE
  m timestamptz;
  month_start timestamp;
  name text;
  made int := 0;
BEGIN
  FOREACH m IN ARRAY months LOOP
    month_start := date_trunc('month', m AT TIME ZONE 'UTC');
    name := parent || '_p' || to_char(month_start, 'YYYYMM');
    -- One creator per partition name. Taken also when the partition is visible already: its
    -- creator may not have sent the invalidations of the parent's partition list yet (it does
    -- before it lets go of this lock), and the caller's next statement must see the partition.
    PERFORM pg_advisory_xact_lock(7240119, hashtext(name));
    CONTINUE WHEN to_regclass(quote_ident(name)) IS NOT NULL;
    BEGIN
      EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name, parent);
      EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', parent, name,
        to_char(month_start, 'YYYY-MM-DD') || ' 00:00:00+00', to_char(month_start + interval '1 month', 'YYYY-MM-DD') || ' 00:00:00+00');
      made := made + 1;
    EXCEPTION WHEN duplicate_table OR unique_violation OR invalid_object_definition THEN
      NULL; -- made by another session meanwhile
    END;
  END LOOP;
  RETURN made;
END
$fn$`;

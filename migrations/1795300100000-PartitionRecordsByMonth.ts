import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * SPEC §8 bounded storage (issue 13): completion_records and usage_rollups_minute become tables
 * partitioned by month (RANGE on created_at / bucket_start), so the worker can drop whole months
 * past retention. The partition key must be in every unique key, so the records' primary key
 * becomes (org_id, id, created_at); ingest keeps (org, id) idempotent with a NOT EXISTS check
 * over the partitions (see docs/scale.md, "Idempotency across partitions").
 *
 * Converts an existing database: each table is renamed aside, the partitioned table is created
 * with the same columns, a partition is made for every month that holds rows (and the months
 * around now), the rows are copied and the old table dropped. Runs in the migration's transaction.
 * `tally_ensure_partitions(parent, months)` creates missing monthly partitions with ATTACH (a
 * SHARE UPDATE EXCLUSIVE lock on the parent, so inserts and reads go on); the worker and ingest
 * call it.
 */
export class PartitionRecordsByMonth1795300100000 implements MigrationInterface {
  name = 'PartitionRecordsByMonth1795300100000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(ENSURE_PARTITIONS_FUNCTION);
    await partition(q, {
      table: 'completion_records',
      time: 'created_at',
      oldPrimaryKey: 'PK_a2a9b9e79aa782a83c9faebfcf7',
      primaryKey: 'CONSTRAINT "PK_47139bb6dc8f90cc3020bb96ad4" PRIMARY KEY ("org_id", "id", "created_at")',
      indexes: {
        completion_records_time_idx: '("created_at")',
        completion_records_org_time_idx: '("org_id", "created_at")',
      },
    });
    await partition(q, {
      table: 'usage_rollups_minute',
      time: 'bucket_start',
      oldPrimaryKey: 'PK_a1c8328174532528f8adcc6caeb',
      primaryKey:
        'CONSTRAINT "PK_a1c8328174532528f8adcc6caeb" PRIMARY KEY ("org_id", "bucket_start", "api_key_id", "team_id", "user_id", "model", "project_id", "batch", "service_tier")',
      indexes: {
        usage_rollups_minute_bucket_idx: '("bucket_start")',
        usage_rollups_minute_key_idx: '("org_id", "api_key_id", "bucket_start")',
      },
    });
  }

  async down(q: QueryRunner): Promise<void> {
    await unpartition(q, 'completion_records', 'PK_47139bb6dc8f90cc3020bb96ad4', 'CONSTRAINT "PK_a2a9b9e79aa782a83c9faebfcf7" PRIMARY KEY ("org_id", "id")', {
      completion_records_time_idx: '("created_at")',
      completion_records_org_time_idx: '("org_id", "created_at")',
    });
    await unpartition(
      q,
      'usage_rollups_minute',
      'PK_a1c8328174532528f8adcc6caeb',
      'CONSTRAINT "PK_a1c8328174532528f8adcc6caeb" PRIMARY KEY ("org_id", "bucket_start", "api_key_id", "team_id", "user_id", "model", "project_id", "batch", "service_tier")',
      { usage_rollups_minute_bucket_idx: '("bucket_start")', usage_rollups_minute_key_idx: '("org_id", "api_key_id", "bucket_start")' },
    );
    await q.query('DROP FUNCTION tally_ensure_partitions(text, timestamptz[])');
  }
}

/** Creates the missing monthly partitions `<parent>_pYYYYMM` of the months holding `months` (UTC). */
export const ENSURE_PARTITIONS_FUNCTION = `
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
    CONTINUE WHEN to_regclass(quote_ident(name)) IS NOT NULL;
    -- One creator per partition name; the others find it made once the lock is theirs.
    PERFORM pg_advisory_xact_lock(7240118, hashtext(name));
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

interface PartitionPlan {
  table: string;
  time: string;
  oldPrimaryKey: string;
  primaryKey: string;
  indexes: Record<string, string>;
}

async function partition(q: QueryRunner, plan: PartitionPlan): Promise<void> {
  const old = `${plan.table}_unpartitioned`;
  await q.query(`ALTER TABLE "${plan.table}" RENAME TO "${old}"`);
  await q.query(`ALTER TABLE "${old}" RENAME CONSTRAINT "${plan.oldPrimaryKey}" TO "${old}_pkey"`);
  for (const name of Object.keys(plan.indexes)) await q.query(`DROP INDEX "${name}"`);
  await q.query(
    `CREATE TABLE "${plan.table}" (LIKE "${old}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS, ${plan.primaryKey}) PARTITION BY RANGE ("${plan.time}")`,
  );
  for (const [name, columns] of Object.entries(plan.indexes)) await q.query(`CREATE INDEX "${name}" ON "${plan.table}" ${columns}`);
  // Every month with rows, and the months around now (ingest and the worker make the others on demand).
  await q.query(
    `SELECT tally_ensure_partitions($1, ARRAY(
       SELECT DISTINCT date_trunc('month', "${plan.time}" AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' FROM "${old}"
       UNION SELECT generate_series(date_trunc('month', now() - interval '400 days'), now() + interval '2 months', interval '1 month')))`,
    [plan.table],
  );
  await q.query(`INSERT INTO "${plan.table}" SELECT * FROM "${old}"`);
  await q.query(`DROP TABLE "${old}"`);
}

/** `partitionedPk`: the name of the partitioned table's primary key (it moves aside for `primaryKey`'s). */
async function unpartition(q: QueryRunner, table: string, partitionedPk: string, primaryKey: string, indexes: Record<string, string>): Promise<void> {
  const old = `${table}_partitioned`;
  await q.query(`ALTER TABLE "${table}" RENAME TO "${old}"`);
  for (const name of Object.keys(indexes)) await q.query(`DROP INDEX "${name}"`);
  await q.query(`ALTER TABLE "${old}" RENAME CONSTRAINT "${partitionedPk}" TO "${old}_pkey"`);
  await q.query(`CREATE TABLE "${table}" (LIKE "${old}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS, ${primaryKey})`);
  for (const [name, columns] of Object.entries(indexes)) await q.query(`CREATE INDEX "${name}" ON "${table}" ${columns}`);
  await q.query(`INSERT INTO "${table}" SELECT * FROM "${old}"`);
  await q.query(`DROP TABLE "${old}" CASCADE`);
}

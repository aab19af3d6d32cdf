import { DataSource, EntityManager } from 'typeorm';
import { NUMERIC_OUT_OF_RANGE, pgErrorCode } from '../database/pg-errors';
import { inHeldTransaction } from '../database/held-connection';
import { SqlRunner } from '../database/sql-runner';
import { ensurePartitions, isMissingPartition } from './partitions';
import { Dimension, DIMENSIONS, MEASURES, RAW_MEASURE_SQL, rawDimensionSql, ROLLUPS, RollupTable } from './rollups';
import { GRANULARITY_SECONDS, MINUTE } from './time-buckets';

/**
 * The journal of pending rollup deltas (issue 13, SPEC §8). Ingest appends, in the statement that
 * inserts the records, one row per minute and combination of every dimension of the new records
 * (no unique key: concurrent batches never wait on each other, whatever buckets they share). The
 * worker's folder moves journal rows into every rollup in one statement that deletes exactly what
 * it adds. Readers sum a rollup and the journal rows of the same range in one statement, so one
 * snapshot sees each record exactly once, folded or not.
 */
export const JOURNAL_TABLE = 'usage_rollup_deltas';

/** Serialises folds (and rollup rebuilds, which take it too): first key of pg_advisory_xact_lock(int, int). */
export const FOLD_LOCK_CLASS = 7_240_117;
export const FOLD_LOCK_KEY = 1;

const JOURNAL_KEY = ['org_id', 'bucket_start', ...DIMENSIONS.filter((d) => d !== 'org_id')] as const;

/** Columns of completion_records, in the order of the unnest parameters of {@link insertRecordsSql}. */
export const RECORD_COLUMNS = [
  ['org_id', 'varchar'],
  ['id', 'varchar'],
  ['api_key_id', 'varchar'],
  ['team_id', 'varchar'],
  ['user_id', 'varchar'],
  ['project_id', 'varchar'],
  ['model', 'varchar'],
  ['input_tokens', 'bigint'],
  ['output_tokens', 'bigint'],
  ['input_cached_tokens', 'bigint'],
  ['input_audio_tokens', 'bigint'],
  ['output_audio_tokens', 'bigint'],
  ['batch', 'boolean'],
  ['service_tier', 'varchar'],
  ['cost_nano', 'bigint'],
  ['unpriced', 'boolean'],
  ['created_at', 'timestamptz'],
] as const;
export type RecordColumn = (typeof RECORD_COLUMNS)[number][0];

/**
 * One statement: inserts the records (skipping ids the org already has) and appends the per-minute
 * sums of the ones actually inserted to the journal. $18 is the number of records: when all of
 * them are new (the usual case) the answer is one row, (inserted, NULL, NULL); otherwise one row
 * per new record, (inserted, org_id, id), or (0, NULL, NULL) when none is.
 * The table is partitioned by created_at, so its primary key is (org_id, id, created_at): the
 * ON CONFLICT catches a retry (same id, same time) racing with the first send, and the NOT EXISTS
 * probe (the primary key's (org_id, id) prefix in each partition) an id already stored at another
 * time. Two batches sending one id with two different times at the same instant can both pass
 * the probe: see docs/scale.md, "Idempotency across partitions".
 */
export function insertRecordsSql(): string {
  const columns = RECORD_COLUMNS.map(([c]) => c);
  const unnest = RECORD_COLUMNS.map(([, type], i) => `$${i + 1}::${type}[]`).join(', ');
  const key = JOURNAL_KEY.map((c) => (c === 'bucket_start' ? `to_timestamp(floor(extract(epoch FROM created_at) / ${MINUTE}) * ${MINUTE})` : rawDimensionSql(c as Dimension)));
  return `WITH inserted AS (
      INSERT INTO completion_records (${columns.join(', ')})
      SELECT * FROM unnest(${unnest}) AS u(${columns.join(', ')})
      WHERE NOT EXISTS (SELECT 1 FROM completion_records c WHERE c.org_id = u.org_id AND c.id = u.id)
      ON CONFLICT (org_id, id, created_at) DO NOTHING
      RETURNING *),
    journal AS (
      INSERT INTO ${JOURNAL_TABLE} (${[...JOURNAL_KEY, ...MEASURES].join(', ')})
      SELECT ${[...key, ...MEASURES.map((m) => `SUM(${RAW_MEASURE_SQL[m]})`)].join(', ')}
      FROM inserted GROUP BY ${JOURNAL_KEY.map((_c, i) => i + 1).join(', ')}),
    counted AS (SELECT count(*)::int AS inserted FROM inserted)
    SELECT c.inserted, i.org_id, i.id FROM counted c LEFT JOIN inserted i ON c.inserted < $${RECORD_COLUMNS.length + 1}`;
}

function bucketOf(table: RollupTable): string {
  const seconds = GRANULARITY_SECONDS[table.granularity];
  return seconds === MINUTE ? 'bucket_start' : `to_timestamp(floor(extract(epoch FROM bucket_start) / ${seconds}) * ${seconds})`;
}

/**
 * Which orgs' journal rows a fold may move: all of them (the usual fold), all but the orgs in
 * `except` (while some org's deltas cannot be folded: see rollup-fold-isolation.ts), or only the
 * orgs in `only` (looking for that org).
 */
export type FoldScope = { except: readonly string[] } | { only: readonly string[] };

/**
 * Moves up to $1 journal rows into every rollup: a data-modifying CTE deletes them and each
 * rollup's upsert sums exactly the deleted rows, all in one statement (one transaction). Rows
 * older than $2 (the minute rollup's retention) are not added to the per-minute rollup. With a
 * scope, $3 is its array of org ids; without one the statement has no org filter at all.
 * The groups are upserted in no particular order (a hash aggregate: a quarter faster than sorting
 * when deltas share a minute): no other transaction writes rollup rows meanwhile (one fold at a
 * time, and the rebuild holds the same lock), so there is no lock order to keep.
 */
export function foldSql(scope?: 'except' | 'only'): string {
  const parts = ROLLUPS.map((r) => {
    const key = ['bucket_start', ...r.dimensions];
    const positions = key.map((_c, i) => i + 1).join(', ');
    // The per-minute rollup is kept MINUTE_ROLLUP_RETENTION_DAYS: older deltas ($2) go to the hours and days only.
    return `fold_${r.name} AS (
      INSERT INTO ${r.table} AS r (${[...key, ...MEASURES].join(', ')})
      SELECT ${[bucketOf(r), ...r.dimensions, ...MEASURES.map((m) => `SUM(${m})`)].join(', ')}
      FROM moved${r.granularity === 'minute' ? ' WHERE bucket_start >= $2' : ''} GROUP BY ${positions}
      ON CONFLICT (${key.join(', ')}) DO UPDATE SET ${MEASURES.map((m) => `${m} = r.${m} + EXCLUDED.${m}`).join(', ')})`;
  });
  const orgFilter = scope === 'except' ? ' WHERE org_id <> ALL($3::varchar[])' : scope === 'only' ? ' WHERE org_id = ANY($3::varchar[])' : '';
  return `WITH moved AS (
      DELETE FROM ${JOURNAL_TABLE} WHERE ctid = ANY(ARRAY(SELECT ctid FROM ${JOURNAL_TABLE}${orgFilter} LIMIT $1))
      RETURNING *),
    ${parts.join(',\n    ')}
    SELECT count(*)::int AS deltas, COALESCE(SUM(num_model_requests), 0)::text AS records,
      COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - min(ingested_at)), 0)::float8 AS lag_seconds
    FROM moved`;
}

export interface FoldResult {
  /** Journal rows moved (0 when another folder holds the lock or nothing is pending). */
  deltas: number;
  /** Records those rows stand for. */
  records: bigint;
  /** Age of the oldest row moved, seconds. */
  lagSeconds: number;
  /** False when another folder held the lock. */
  locked: boolean;
}

/**
 * One fold, in the caller's transaction: takes the fold lock without waiting (one folder at a
 * time; a rebuild holds it too) and moves up to `limit` journal rows (of the orgs in `scope`, if
 * given). Deltas before `minuteFrom` skip the per-minute rollup.
 */
export async function foldOnce(manager: SqlRunner, limit: number, minuteFrom = new Date(0), scope?: FoldScope): Promise<FoldResult> {
  const [lock] = await manager.query('SELECT pg_try_advisory_xact_lock($1, $2) AS locked', [FOLD_LOCK_CLASS, FOLD_LOCK_KEY]);
  if (!lock.locked) return { deltas: 0, records: 0n, lagSeconds: 0, locked: false };
  const params: unknown[] = [limit, minuteFrom.toISOString()];
  let sql = foldSql();
  // An empty exclusion list is the usual fold: the statement without an org filter, as cheap as ever.
  if (scope && 'only' in scope) {
    sql = foldSql('only');
    params.push(scope.only);
  } else if (scope && scope.except.length > 0) {
    sql = foldSql('except');
    params.push(scope.except);
  }
  const [row] = await manager.query(sql, params);
  return { deltas: row.deltas, records: BigInt(row.records), lagSeconds: row.lag_seconds, locked: true };
}

/**
 * True when a fold failed because a sum does not fit a rollup's bigint (SQLSTATE 22003): ingest
 * refuses a batch whose own sums overflow, but records of several batches or minutes can
 * overflow an hour's or a day's row together. Folding that org's deltas fails on every attempt.
 */
export function isFoldOverflow(err: unknown): boolean {
  return pgErrorCode(err) === NUMERIC_OUT_OF_RANGE;
}

/** The orgs with journal rows, but for those in `except`. */
export async function journalOrgs(manager: SqlRunner, except: readonly string[]): Promise<string[]> {
  const rows: Array<{ org_id: string }> = await manager.query(
    `SELECT DISTINCT org_id FROM ${JOURNAL_TABLE} WHERE org_id <> ALL($1::varchar[]) ORDER BY org_id`,
    [except],
  );
  return rows.map((r) => r.org_id);
}

/** Waits for the fold lock (the rebuild: no fold runs while it rewrites a day). */
export async function holdFoldLock(manager: EntityManager): Promise<void> {
  await manager.query('SELECT pg_advisory_xact_lock($1, $2)', [FOLD_LOCK_CLASS, FOLD_LOCK_KEY]);
}

/** Deletes one org's journal rows of [from, to): the rebuild recomputes their rollups from the records. */
export async function dropJournalRange(manager: EntityManager, orgId: string, from: Date, to: Date): Promise<number> {
  const rows = await manager.query(
    `WITH d AS (DELETE FROM ${JOURNAL_TABLE} WHERE org_id = $1 AND bucket_start >= $2 AND bucket_start < $3 RETURNING 1) SELECT count(*)::int AS n FROM d`,
    [orgId, from.toISOString(), to.toISOString()],
  );
  return rows[0].n;
}

/**
 * Vacuums the journal (outside any transaction): frees the space of folded rows for new ones.
 * SKIP_LOCKED: when another worker is vacuuming it, this one does nothing. TRUNCATE false: the
 * emptied pages stay for the next deltas, and the vacuum never takes the ACCESS EXCLUSIVE lock
 * that cutting them off would need (it would stall every ingest and spend read meanwhile).
 */
export async function vacuumJournal(dataSource: DataSource): Promise<void> {
  await dataSource.query(`VACUUM (SKIP_LOCKED, TRUNCATE false) ${JOURNAL_TABLE}`);
}

/** Pending rows and the age of the oldest, for the metrics. */
export async function journalBacklog(manager: SqlRunner): Promise<{ rows: number; lagSeconds: number }> {
  const [row] = await manager.query(
    `SELECT count(*)::int AS rows, COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - min(ingested_at)), 0)::float8 AS lag FROM ${JOURNAL_TABLE}`,
  );
  return { rows: row.rows, lagSeconds: row.lag };
}

/** Unix seconds of the month starts of the journal rows at or after `from` (to make missing minute partitions). */
export async function journalMonths(manager: SqlRunner, from: Date): Promise<number[]> {
  const rows: Array<{ month: string }> = await manager.query(
    `SELECT DISTINCT floor(extract(epoch FROM date_trunc('month', bucket_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'))::bigint::text AS month
     FROM ${JOURNAL_TABLE} WHERE bucket_start >= $1`,
    [from.toISOString()],
  );
  return rows.map((r) => Number(r.month));
}

/**
 * One fold in its own transaction, making a missing per-minute partition first when a
 * back-dated delta needs one (then folding again).
 */
export async function foldBatch(dataSource: DataSource, limit: number, minuteFrom: Date, scope?: FoldScope): Promise<FoldResult> {
  try {
    return await inHeldTransaction(dataSource, (runner) => foldOnce(runner, limit, minuteFrom, scope));
  } catch (err) {
    if (!isMissingPartition(err)) throw err;
    await ensurePartitions(dataSource, 'usage_rollups_minute', await journalMonths(dataSource, minuteFrom));
    return inHeldTransaction(dataSource, (runner) => foldOnce(runner, limit, minuteFrom, scope));
  }
}

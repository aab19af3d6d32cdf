import { DataSource, EntityManager } from 'typeorm';
import { NUMERIC_OUT_OF_RANGE, pgErrorCode } from '../database/pg-errors';
import { inHeldTransaction } from '../database/held-connection';
import { SqlRunner } from '../database/sql-runner';
import { ensurePartitions, isMissingPartition } from './partitions';
import { anyHeldGroups } from './rollup-held-groups';
import { DELTA_COLUMNS, DELTA_KEY, HELD_DELTAS_TABLE, HELD_GROUPS_TABLE, inHeldGroupSql, JOURNAL_TABLE } from './pending-deltas';
import { Dimension, MEASURES, RAW_MEASURE_SQL, rawDimensionSql, rollupBucketSql, ROLLUPS } from './rollups';
import { MINUTE } from './time-buckets';

/**
 * The journal of pending rollup deltas (issue 13, SPEC §8). Ingest appends, in the statement that
 * inserts the records, one row per minute and combination of every dimension of the new records
 * (no unique key: concurrent batches never wait on each other, whatever buckets they share). The
 * worker's folder moves journal rows into every rollup in one statement that deletes exactly what
 * it adds (or, for a group held because its sums overflow, into the held rows: see
 * pending-deltas.ts). Readers sum a rollup and the journal and held rows of the same range in one
 * statement, so one snapshot sees each record exactly once, folded or not.
 */
export { JOURNAL_TABLE };

/**
 * Serialises folds, rollup rebuilds and the holding and release of held groups (all take it):
 * first key of pg_advisory_xact_lock(int, int).
 */
export const FOLD_LOCK_CLASS = 7_240_117;
export const FOLD_LOCK_KEY = 1;

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
  const key = DELTA_KEY.map((c) => (c === 'bucket_start' ? `to_timestamp(floor(extract(epoch FROM created_at) / ${MINUTE}) * ${MINUTE})` : rawDimensionSql(c as Dimension)));
  return `WITH inserted AS (
      INSERT INTO completion_records (${columns.join(', ')})
      SELECT * FROM unnest(${unnest}) AS u(${columns.join(', ')})
      WHERE NOT EXISTS (SELECT 1 FROM completion_records c WHERE c.org_id = u.org_id AND c.id = u.id)
      ON CONFLICT (org_id, id, created_at) DO NOTHING
      RETURNING *),
    journal AS (
      INSERT INTO ${JOURNAL_TABLE} (${[...DELTA_KEY, ...MEASURES].join(', ')})
      SELECT ${[...key, ...MEASURES.map((m) => `SUM(${RAW_MEASURE_SQL[m]})`)].join(', ')}
      FROM inserted GROUP BY ${DELTA_KEY.map((_c, i) => i + 1).join(', ')}),
    counted AS (SELECT count(*)::int AS inserted FROM inserted)
    SELECT c.inserted, i.org_id, i.id FROM counted c LEFT JOIN inserted i ON c.inserted < $${RECORD_COLUMNS.length + 1}`;
}

/**
 * Moves up to $1 journal rows (or, `byCtids`, those at the ctids $1) out of the journal: a data-modifying CTE deletes them and each
 * rollup's upsert sums exactly the deleted rows, all in one statement (one transaction). Rows
 * older than $2 (the minute rollup's retention) are not added to the per-minute rollup.
 * With `divert` (some group is held: see rollup-held-groups.ts), the deleted rows of held groups
 * go into the held rows instead, in the same statement; the rest are folded. Without it the
 * statement never reads the held groups: the usual fold costs what it did before there were any.
 * The groups are upserted in no particular order (a hash aggregate: a quarter faster than sorting
 * when deltas share a minute): no other transaction writes rollup rows meanwhile (one fold at a
 * time, and the rebuild holds the same lock), so there is no lock order to keep.
 */
export function foldSql(divert = false, byCtids = false): string {
  // What the rollups get: every deleted row, or those of groups that are not held.
  const folded = divert ? 'kept' : 'moved';
  const parts = ROLLUPS.map((r) => {
    const key = ['bucket_start', ...r.dimensions];
    const positions = key.map((_c, i) => i + 1).join(', ');
    // The per-minute rollup is kept MINUTE_ROLLUP_RETENTION_DAYS: older deltas ($2) go to the hours and days only.
    return `fold_${r.name} AS (
      INSERT INTO ${r.table} AS r (${[...key, ...MEASURES].join(', ')})
      SELECT ${[rollupBucketSql(r), ...r.dimensions, ...MEASURES.map((m) => `SUM(${m})`)].join(', ')}
      FROM ${folded}${r.granularity === 'minute' ? ' WHERE bucket_start >= $2' : ''} GROUP BY ${positions}
      ON CONFLICT (${key.join(', ')}) DO UPDATE SET ${MEASURES.map((m) => `${m} = r.${m} + EXCLUDED.${m}`).join(', ')})`;
  });
  const held = `EXISTS (SELECT 1 FROM ${HELD_GROUPS_TABLE} g WHERE ${inHeldGroupSql('m', 'g')})`;
  const diverted = divert
    ? [
        `held AS (
      INSERT INTO ${HELD_DELTAS_TABLE} (${DELTA_COLUMNS.join(', ')})
      SELECT ${DELTA_COLUMNS.join(', ')} FROM moved m WHERE ${held} RETURNING 1)`,
        `kept AS (SELECT * FROM moved m WHERE NOT ${held})`,
      ]
    : [];
  // $1: how many rows (the usual fold: the first ones of the journal), or which (their ctids: a fold again after a hold).
  const rows = byCtids ? '$1::tid[]' : `ARRAY(SELECT ctid FROM ${JOURNAL_TABLE} LIMIT $1)`;
  return `WITH moved AS (
      DELETE FROM ${JOURNAL_TABLE} WHERE ctid = ANY(${rows})
      RETURNING *),
    ${[...diverted, ...parts].join(',\n    ')}
    SELECT count(*)::int AS deltas, ${divert ? '(SELECT count(*) FROM held)::int' : '0'} AS held,
      COALESCE(SUM(num_model_requests), 0)::text AS records,
      COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - min(ingested_at)), 0)::float8 AS lag_seconds
    FROM ${folded}`;
}

export interface FoldResult {
  /** Journal rows moved into the rollups (0 when another folder holds the lock or nothing is pending). */
  deltas: number;
  /** Journal rows of held groups moved into the held rows instead. */
  held: number;
  /** Records the folded rows stand for. */
  records: bigint;
  /** Age of the oldest row folded, seconds. */
  lagSeconds: number;
  /** False when another folder held the lock. */
  locked: boolean;
}

/**
 * Called, in the fold's transaction and under the fold lock, when a fold failed because a sum
 * overflows a rollup's bigint: holds the groups that overflow (rollup-held-groups.ts) and says
 * how many it newly held. None: the fold's error is thrown.
 */
export type OnFoldOverflow = (runner: SqlRunner, ctids: string) => Promise<number>;

/** Rounds of holding and folding again after overflows in one fold (each holds at least one new group). */
const MAX_HOLD_ROUNDS = 5;

/**
 * One fold, in the caller's transaction: takes the fold lock without waiting (one folder at a
 * time; a rebuild and the holds' release hold it too) and moves up to `limit` journal rows,
 * diverting those of held groups. Deltas before `minuteFrom` skip the per-minute rollup. With
 * `onOverflow`, a fold that overflows is rolled back to a savepoint, the overflowing groups are
 * held and the fold runs again, all under the one lock: no other folder sees the journal between.
 */
export async function foldOnce(manager: SqlRunner, limit: number, minuteFrom = new Date(0), onOverflow?: OnFoldOverflow): Promise<FoldResult> {
  const [lock] = await manager.query('SELECT pg_try_advisory_xact_lock($1, $2) AS locked', [FOLD_LOCK_CLASS, FOLD_LOCK_KEY]);
  if (!lock.locked) return { deltas: 0, held: 0, records: 0n, lagSeconds: 0, locked: false };
  // Groups are held and released only under the fold lock: this answer holds for the whole fold.
  let divert = await anyHeldGroups(manager);
  // The usual fold takes the first `limit` rows in its own statement. After an overflow, the rows
  // are chosen once (their ctids): the hold looks at those rows and the fold runs again over the
  // same ones, so deltas that arrive meanwhile (another overflowing pair, say) never make the next
  // round fail too. Only a fold deletes journal rows (under this lock), so the ctids stay its rows.
  let ctids: string | undefined;
  for (let round = 0; ; round++) {
    if (onOverflow) await manager.query('SAVEPOINT fold');
    try {
      const [row] = await manager.query(foldSql(divert, ctids !== undefined), [ctids ?? limit, minuteFrom.toISOString()]);
      return { deltas: row.deltas, held: row.held, records: BigInt(row.records), lagSeconds: row.lag_seconds, locked: true };
    } catch (err) {
      if (!onOverflow || !isFoldOverflow(err) || round === MAX_HOLD_ROUNDS) throw err;
      await manager.query('ROLLBACK TO SAVEPOINT fold');
      if (ctids === undefined) {
        const [chosen] = await manager.query(`SELECT array_agg(ctid)::text AS ctids FROM (SELECT ctid FROM ${JOURNAL_TABLE} LIMIT $1) j`, [limit]);
        if (chosen.ctids === null) throw err;
        ctids = chosen.ctids as string;
      }
      if ((await onOverflow(manager, ctids)) === 0) throw err;
      divert = true;
    }
  }
}

/**
 * True when a fold failed because a sum does not fit a rollup's bigint (SQLSTATE 22003): ingest
 * refuses a batch whose own sums overflow, but records of several batches or minutes can
 * overflow an hour's or a day's row together. Folding those deltas fails on every attempt until
 * their group is held (rollup-held-groups.ts).
 */
export function isFoldOverflow(err: unknown): boolean {
  return pgErrorCode(err) === NUMERIC_OUT_OF_RANGE;
}

/** Waits for the fold lock (the rebuild: no fold runs while it rewrites a day). */
export async function holdFoldLock(manager: EntityManager): Promise<void> {
  await manager.query('SELECT pg_advisory_xact_lock($1, $2)', [FOLD_LOCK_CLASS, FOLD_LOCK_KEY]);
}

/**
 * Deletes one org's pending deltas of [from, to), journal and held rows, and its held groups of
 * those days: the rebuild recomputes their rollups from the records (a rollup row it could write
 * fits a bigint, so the group need not be held; should the day's records overflow, the rebuild
 * fails and rolls this back). Call under the fold lock; [from, to) is whole UTC days.
 */
export async function dropPendingRange(manager: SqlRunner, orgId: string, from: Date, to: Date): Promise<number> {
  const range = 'org_id = $1 AND bucket_start >= $2 AND bucket_start < $3';
  const [row] = await manager.query(
    `WITH j AS (DELETE FROM ${JOURNAL_TABLE} WHERE ${range} RETURNING 1),
       h AS (DELETE FROM ${HELD_DELTAS_TABLE} WHERE ${range} RETURNING 1),
       g AS (DELETE FROM ${HELD_GROUPS_TABLE} WHERE ${range} RETURNING 1)
     SELECT (SELECT count(*) FROM j)::int + (SELECT count(*) FROM h)::int AS n`,
    [orgId, from.toISOString(), to.toISOString()],
  );
  return row.n;
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

export interface JournalBacklog {
  /** Journal rows. */
  rows: number;
  /** Age of the oldest journal row, seconds (0 when none). */
  lagSeconds: number;
  /** Groups held out of the folds. */
  heldGroups: number;
}

/** The journal's rows and the age of the oldest, and the held groups, for the metrics. */
export async function journalBacklog(manager: SqlRunner): Promise<JournalBacklog> {
  const [row] = await manager.query(
    `SELECT count(*)::int AS rows, COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - min(ingested_at)), 0)::float8 AS lag,
       (SELECT count(*) FROM ${HELD_GROUPS_TABLE})::int AS held FROM ${JOURNAL_TABLE}`,
  );
  return { rows: row.rows, lagSeconds: row.lag, heldGroups: row.held };
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
export async function foldBatch(dataSource: DataSource, limit: number, minuteFrom: Date, onOverflow?: OnFoldOverflow): Promise<FoldResult> {
  try {
    return await inHeldTransaction(dataSource, (runner) => foldOnce(runner, limit, minuteFrom, onOverflow));
  } catch (err) {
    if (!isMissingPartition(err)) throw err;
    await ensurePartitions(dataSource, 'usage_rollups_minute', await journalMonths(dataSource, minuteFrom));
    return inHeldTransaction(dataSource, (runner) => foldOnce(runner, limit, minuteFrom, onOverflow));
  }
}

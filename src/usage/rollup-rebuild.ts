import { DataSource, EntityManager } from 'typeorm';
import { ensurePartitions } from './partitions';
import { PENDING_TABLES } from './pending-deltas';
import { dropPendingRange, holdFoldLock, isFoldOverflow } from './rollup-journal';
import { rebuildRollupRange, RollupName, ROLLUPS, zeroRowCounts } from './rollups';
import { DAY } from './time-buckets';
import { ROLLUP_LOCK_CLASS } from './usage-ingest.service';

export interface RebuildProgress {
  done: number;
  total: number;
  orgId: string;
}

/** RECORDS_RETENTION_DAYS and MINUTE_ROLLUP_RETENTION_DAYS. */
export interface RebuildRetention {
  recordsDays: number;
  minuteDays: number;
}

function monthStart(unixSeconds: number): number {
  const d = new Date(unixSeconds * 1000);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1) / 1000;
}

export interface RebuildTotals {
  orgs: number;
  days: number;
  /** Org-days left as they were: their records' partition was gone (dropped past retention) when their turn came, or their sums overflow a bigint. */
  skipped: number;
  records: number;
  rows: Record<RollupName, number>;
}

/**
 * In the day's transaction: whether the day may be rebuilt from the records. Its month's records
 * partition, when it exists, is locked so that a drop (DETACH … CONCURRENTLY) waits for this
 * transaction and cannot take it away meanwhile; one being detached is not read. A month with no
 * partition is one past what the table still holds when it lies before the oldest attached month
 * (dropped past retention, before or during this run, or past a retention this command was not
 * told of): its hourly and daily rows are the only copy left, and rebuilding them from no records
 * would erase them. After the oldest month it never had records, so its stale rows are cleared.
 */
async function mayRebuildDay(manager: EntityManager, day: number): Promise<boolean> {
  const d = new Date(day * DAY * 1000);
  const month = `${d.getUTCFullYear()}${String(d.getUTCMonth() + 1).padStart(2, '0')}`;
  const name = `completion_records_p${month}`;
  const [exists] = await manager.query('SELECT to_regclass($1) IS NOT NULL AS present', [name]);
  if (exists.present) {
    // SHARE UPDATE EXCLUSIVE: the first phase of DETACH … CONCURRENTLY takes it too, so a detach
    // waits for this day (ACCESS SHARE did not stop it; ingest's ROW EXCLUSIVE does not conflict).
    await manager.query(`LOCK TABLE ${name} IN SHARE UPDATE EXCLUSIVE MODE`);
    const attached = await manager.query(
      `SELECT 1 FROM pg_inherits WHERE inhrelid = $1::regclass AND inhparent = 'completion_records'::regclass AND NOT inhdetachpending`,
      [name],
    );
    return attached.length > 0;
  }
  const [oldest] = await manager.query(
    `SELECT min(c.relname) AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'completion_records'::regclass AND NOT i.inhdetachpending AND c.relname ~ '^completion_records_p[0-9]{6}$'`,
  );
  return oldest.name !== null && name > oldest.name;
}

/** Days (Unix day numbers) on which an org has rows in a table: a loose index scan, one probe per day. */
function daysSql(table: string, time: string): string {
  return `WITH RECURSIVE days(day) AS (
      SELECT floor(extract(epoch FROM min(${time})) / ${DAY})::bigint FROM ${table} WHERE org_id = $1
      UNION ALL
      SELECT (SELECT floor(extract(epoch FROM min(${time})) / ${DAY})::bigint FROM ${table}
              WHERE org_id = $1 AND ${time} >= to_timestamp((days.day + 1) * ${DAY}))
      FROM days WHERE days.day IS NOT NULL)
    SELECT day FROM days WHERE day IS NOT NULL`;
}

const SOURCES: Array<[string, string]> = [
  ['completion_records', 'created_at'],
  ...ROLLUPS.map((r): [string, string] => [r.table, 'bucket_start']),
  ...PENDING_TABLES.map((table): [string, string] => [table, 'bucket_start']),
];

/**
 * Rebuilds every rollup row from the raw records, one transaction per org and UTC day: each
 * deletes that day's rollup rows and inserts them again from the records, so the command is
 * idempotent and can stop and resume anywhere. Days that only have (stale) rollup rows are
 * cleared, and the day's pending deltas (journal and held rows) dropped with its held groups (the
 * records already hold them; a group whose rebuilt rows fit a bigint need not be held). An
 * exclusive per-org advisory lock makes concurrent ingests of that org wait; the fold lock keeps
 * the folder out of the day being rewritten. Days past the record retention, or whose records'
 * partition is gone when their turn comes (see mayRebuildDay), are left alone, and
 * days past the minute rollup's retention get no per-minute rows (their hours come from the records).
 */
/**
 * One day's transaction; null when it left the day as it was: its records' partition is gone, or
 * its records' sums overflow a rollup's bigint (a group held for that reason stays held: the
 * transaction, its drop of the held rows included, is rolled back), so one such day does not end
 * the run.
 */
async function rebuildDay<T>(dataSource: DataSource, run: (manager: EntityManager) => Promise<T | null>): Promise<T | null> {
  try {
    return await dataSource.transaction(run);
  } catch (err) {
    if (isFoldOverflow(err)) return null;
    throw err;
  }
}

export async function rebuildRollups(
  dataSource: DataSource,
  onProgress: (progress: RebuildProgress) => void = () => undefined,
  retention: RebuildRetention = { recordsDays: 36_500, minuteDays: 36_500 },
): Promise<RebuildTotals> {
  const now = Date.now() / 1000;
  // Partitions go by whole months past retention: a day from the month holding the cutoff on still has all its rows.
  const recordsFromDay = monthStart(now - retention.recordsDays * DAY) / DAY;
  const minuteFromDay = monthStart(now - retention.minuteDays * DAY) / DAY;
  // Records reference keys, keys reference orgs (never deleted): every org's days are found from here.
  const orgRows: Array<{ id: string }> = await dataSource.query('SELECT id FROM orgs ORDER BY id');
  const plan: Array<{ orgId: string; days: number[] }> = [];
  for (const { id } of orgRows) {
    const days = new Set<number>();
    for (const [table, time] of SOURCES) {
      for (const row of await dataSource.query(daysSql(table, time), [id])) days.add(Number(row.day));
    }
    // Days whose records are past retention keep their hourly and daily rows: nothing to rebuild them from.
    const kept = [...days].filter((day) => day >= recordsFromDay).sort((a, b) => a - b);
    if (kept.length > 0) plan.push({ orgId: id, days: kept });
  }
  const totals: RebuildTotals = { orgs: plan.length, days: 0, skipped: 0, records: 0, rows: zeroRowCounts() };
  const total = plan.reduce((n, p) => n + p.days.length, 0);
  onProgress({ done: 0, total, orgId: plan[0]?.orgId ?? '' });
  for (const { orgId, days } of plan) {
    for (const day of days) {
      if (day >= minuteFromDay) await ensurePartitions(dataSource, 'usage_rollups_minute', [day * DAY]);
      const counts = await rebuildDay(dataSource, async (manager) => {
        // The records first: a day whose partition was dropped (before or during the run, or past a
        // retention this command was not told of) is left alone.
        if (!(await mayRebuildDay(manager, day))) return null;
        await manager.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [ROLLUP_LOCK_CLASS, orgId]);
        // No fold runs meanwhile: the day's pending deltas are dropped and its rollups recomputed from the records.
        await holdFoldLock(manager);
        const from = new Date(day * DAY * 1000);
        const to = new Date((day + 1) * DAY * 1000);
        await dropPendingRange(manager, orgId, from, to);
        return rebuildRollupRange(manager, orgId, from, to, day >= minuteFromDay);
      });
      if (counts === null) totals.skipped += 1;
      else {
        totals.days += 1;
        totals.records += counts.records;
        for (const r of ROLLUPS) totals.rows[r.name] += counts.rows[r.name];
      }
      onProgress({ done: totals.days + totals.skipped, total, orgId });
    }
  }
  return totals;
}

import { DataSource } from 'typeorm';
import { ensurePartitions } from './partitions';
import { PENDING_TABLES } from './pending-deltas';
import { dropPendingRange, holdFoldLock } from './rollup-journal';
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
  records: number;
  rows: Record<RollupName, number>;
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
 * the folder out of the day being rewritten. Days past the record retention are left alone, and
 * days past the minute rollup's retention get no per-minute rows (their hours come from the records).
 */
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
  const totals: RebuildTotals = { orgs: plan.length, days: 0, records: 0, rows: zeroRowCounts() };
  const total = plan.reduce((n, p) => n + p.days.length, 0);
  onProgress({ done: 0, total, orgId: plan[0]?.orgId ?? '' });
  for (const { orgId, days } of plan) {
    for (const day of days) {
      if (day >= minuteFromDay) await ensurePartitions(dataSource, 'usage_rollups_minute', [day * DAY]);
      const counts = await dataSource.transaction(async (manager) => {
        await manager.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [ROLLUP_LOCK_CLASS, orgId]);
        // No fold runs meanwhile: the day's pending deltas are dropped and its rollups recomputed from the records.
        await holdFoldLock(manager);
        const from = new Date(day * DAY * 1000);
        const to = new Date((day + 1) * DAY * 1000);
        await dropPendingRange(manager, orgId, from, to);
        return rebuildRollupRange(manager, orgId, from, to, day >= minuteFromDay);
      });
      totals.days += 1;
      totals.records += counts.records;
      for (const r of ROLLUPS) totals.rows[r.name] += counts.rows[r.name];
      onProgress({ done: totals.days, total, orgId });
    }
  }
  return totals;
}

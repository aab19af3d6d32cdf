import { DataSource } from 'typeorm';
import { withHeldConnection } from '../database/held-connection';
import { SqlRunner } from '../database/sql-runner';
import { DAY } from './time-buckets';

/**
 * Monthly range partitions of the tables that grow with every record (SPEC §8): their names,
 * creation (the `tally_ensure_partitions` SQL function, last replaced by the
 * EnsurePartitionsWaitsForCreator migration: CREATE TABLE … LIKE + ATTACH PARTITION, which takes
 * only a SHARE UPDATE EXCLUSIVE lock on the parent) and retention (DETACH PARTITION …
 * CONCURRENTLY, then DROP TABLE, under a lock_timeout).
 */
export const PARTITIONED_TABLES = ['completion_records', 'usage_rollups_minute'] as const;
export type PartitionedTable = (typeof PARTITIONED_TABLES)[number];

/**
 * First key of the transaction-scoped advisory lock `tally_ensure_partitions` takes per partition
 * name (second key: `hashtext(name)`), also when the partition exists: the call returns only once
 * the partition's creator has finished committing, so the caller's next statement routes to it.
 */
export const PARTITION_CREATE_LOCK_CLASS = 7_240_119;

/** A partition of a month: `<table>_pYYYYMM`, holding [month start, next month start) in UTC. */
export interface MonthPartition {
  name: string;
  /** Unix seconds of the first instant after the partition's range. */
  end: number;
  /** Detached but not yet finalised (a DETACH CONCURRENTLY was interrupted). */
  detachPending: boolean;
}

/** PostgreSQL's "no partition of relation … found for row" (a check_violation). */
export function isMissingPartition(err: unknown): boolean {
  const e = (err as { driverError?: { code?: string; message?: string } }).driverError ?? (err as { code?: string; message?: string });
  return e?.code === '23514' && /no partition of relation/.test(e.message ?? '');
}

/** Unix seconds of the UTC month starts of every month in [from, to] (inclusive). */
export function monthsBetween(from: number, to: number): number[] {
  const months: number[] = [];
  const d = new Date(from * 1000);
  let y = d.getUTCFullYear();
  let m = d.getUTCMonth();
  for (;;) {
    const start = Date.UTC(y, m, 1) / 1000;
    if (start > to) return months;
    months.push(start);
    m += 1;
    if (m === 12) {
      m = 0;
      y += 1;
    }
  }
}

/** Makes the partitions of `table` for the months holding `times` (Unix seconds); returns how many it created. */
export async function ensurePartitions(db: SqlRunner, table: PartitionedTable, times: number[]): Promise<number> {
  if (times.length === 0) return 0;
  const months = [...new Set(times.map((t) => monthsBetween(t, t)[0]))].map((t) => new Date(t * 1000).toISOString());
  const [row] = await db.query('SELECT tally_ensure_partitions($1, $2::timestamptz[]) AS made', [table, months]);
  return row.made;
}

/** The monthly partitions of a table, oldest first (tables named like a partition but detached included). */
export async function listPartitions(db: SqlRunner, table: PartitionedTable): Promise<MonthPartition[]> {
  const rows: Array<{ name: string; pending: boolean | null }> = await db.query(
    `SELECT c.relname AS name, i.inhdetachpending AS pending
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
     LEFT JOIN pg_inherits i ON i.inhrelid = c.oid AND i.inhparent = $1::regclass
     WHERE c.relkind = 'r' AND c.relname ~ ('^' || $1 || '_p[0-9]{6}$')
     ORDER BY c.relname`,
    [table],
  );
  return rows.map((row) => {
    const suffix = row.name.slice(-6);
    const year = Number(suffix.slice(0, 4));
    const month = Number(suffix.slice(4));
    return { name: row.name, end: Date.UTC(year, month, 1) / 1000, detachPending: row.pending === true };
  });
}

export interface MaintenanceResult {
  created: Record<PartitionedTable, number>;
  dropped: string[];
  /** What failed (a table's creation ahead, or one partition's drop), each with its error: the rest went on. */
  failed: Array<{ step: string; error: unknown }>;
}

export interface RetentionDays {
  records: number;
  minute: number;
}

const RETENTION_OF: Record<PartitionedTable, keyof RetentionDays> = { completion_records: 'records', usage_rollups_minute: 'minute' };
export const MAINTENANCE_LOCK_CLASS = 7_240_117;
export const MAINTENANCE_LOCK_KEY = 2;
/** How far back maintenance fills in missing months (ingest makes older ones on demand). */
const BACKFILL_DAYS = 400;

/**
 * How long a DETACH CONCURRENTLY may wait for the transactions that still see the partition (a
 * report's cursor may stay open for REPORT_STATEMENT_TIMEOUT_MS twice over). The wait holds no
 * lock that anyone else waits for (ingest, reads and the creation of new months go on), so it can
 * be long; with the 5 s of the other steps, steady long reports kept retention from ever running.
 */
const DETACH_LOCK_TIMEOUT_MS = 15 * 60_000;

/**
 * The per-minute rollup keeps a day more than MINUTE_ROLLUP_RETENTION_DAYS: the folder still
 * writes minutes that far back (a reader whose clock is behind still finds them), so a partition
 * dropped without that day would make its folds fail on the late deltas of that day.
 */
const EXTRA_DAYS: Record<PartitionedTable, number> = { completion_records: 0, usage_rollups_minute: 1 };

/**
 * Creates the partitions of the current and the next two months (and any missing month inside
 * retention), then detaches and drops every partition whose whole range is older than the
 * retention. Each DETACH CONCURRENTLY runs outside a transaction and waits for running
 * statements on the table instead of blocking new ones; `lockTimeoutMs` bounds the other lock
 * waits. A step that fails (a table's creation ahead, one partition's drop) is reported in
 * `failed` and the others still run.
 */
export async function maintainPartitions(dataSource: DataSource, retention: RetentionDays, now = Date.now() / 1000, lockTimeoutMs = 5000): Promise<MaintenanceResult> {
  const result: MaintenanceResult = { created: { completion_records: 0, usage_rollups_minute: 0 }, dropped: [], failed: [] };
  /** Runs one step; false when it failed (reported in `failed`). */
  const step = async (name: string, run: () => Promise<void>): Promise<boolean> => {
    try {
      await run();
      return true;
    } catch (error) {
      result.failed.push({ step: name, error });
      return false;
    }
  };
  await withHeldConnection(dataSource, async (runner) => {
    let locked = false;
    try {
      // One maintainer at a time across workers (a session lock: DETACH CONCURRENTLY cannot run in a transaction).
      locked = (await runner.query('SELECT pg_try_advisory_lock($1, $2) AS locked', [MAINTENANCE_LOCK_CLASS, MAINTENANCE_LOCK_KEY]))[0].locked;
      if (!locked) return;
      await runner.query(`SET lock_timeout = ${Math.floor(lockTimeoutMs)}`);
      for (const table of PARTITIONED_TABLES) {
        const days = retention[RETENTION_OF[table]] + EXTRA_DAYS[table];
        const cutoff = now - days * DAY;
        await step(`create ${table}`, async () => {
          result.created[table] = await ensurePartitions(runner, table, monthsBetween(Math.max(cutoff, now - BACKFILL_DAYS * DAY), now + 62 * DAY));
        });
        let partitions: MonthPartition[] = [];
        await step(`list ${table}`, async () => {
          partitions = await listPartitions(runner, table);
        });
        for (const partition of partitions) {
          if (partition.end > cutoff) continue;
          // Drops stay contiguous from the oldest month: after a failed one, the newer wait for the
          // next run (the rebuild reads a missing month after the oldest left as one that never had records).
          const dropped = await step(`drop ${partition.name}`, async () => {
            const attached = await runner.query('SELECT 1 FROM pg_inherits WHERE inhrelid = $1::regclass', [partition.name]);
            if (attached.length > 0) {
              await runner.query(`SET lock_timeout = ${DETACH_LOCK_TIMEOUT_MS}`);
              try {
                await runner.query(`ALTER TABLE ${table} DETACH PARTITION ${partition.name} ${partition.detachPending ? 'FINALIZE' : 'CONCURRENTLY'}`);
              } finally {
                await runner.query(`SET lock_timeout = ${Math.floor(lockTimeoutMs)}`);
              }
            }
            await runner.query(`DROP TABLE ${partition.name}`);
            result.dropped.push(partition.name);
          });
          if (!dropped) break;
        }
      }
    } finally {
      await runner.query('RESET lock_timeout').catch(() => undefined);
      if (locked) await runner.query('SELECT pg_advisory_unlock($1, $2)', [MAINTENANCE_LOCK_CLASS, MAINTENANCE_LOCK_KEY]).catch(() => undefined);
    }
  });
  return result;
}

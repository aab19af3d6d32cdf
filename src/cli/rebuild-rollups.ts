import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { loadConfig } from '../config/app-config';
import { dataSourceOptions } from '../database/data-source';
import { RebuildProgress, rebuildRollups, RebuildTotals } from '../usage/rollup-rebuild';
import { Output, textProgressBar } from './progress';

/** The rebuild's progress as a text bar of org-days. */
export function progressBar(out: Output): (progress: RebuildProgress) => void {
  const bar = textProgressBar(out, 'org-days');
  return ({ done, total, orgId }) => bar(done, total, orgId);
}

export function summary(totals: RebuildTotals, seconds: number): string {
  return (
    `Rebuilt rollups of ${totals.records} records: ${totals.orgs} orgs, ${totals.days} org-days` +
    (totals.skipped > 0 ? ` (${totals.skipped} org-days left as they were: their records' partition is gone, or their sums overflow a bigint)` : '') +
    '; ' +
    `rows: ${totals.rows.minute} per-minute, ${totals.rows.hour} per-hour, ${totals.rows.day} per-day, ` +
    `${totals.rows.hourByKey} per-hour by key, ${totals.rows.dayByKey} per-day by key (${seconds.toFixed(1)} s)\n`
  );
}

/**
 * `npm run rollups:rebuild`: rebuilds the usage rollups of DATABASE_URL from the raw completion
 * records (the source of truth). Idempotent; safe to run while the service ingests. Days past
 * RECORDS_RETENTION_DAYS are left as they are (their records are gone).
 */
export async function main(env: Record<string, string | undefined> = process.env, out: Output = process.stderr): Promise<RebuildTotals> {
  const url = env.DATABASE_URL;
  if (!url) throw new Error('Set DATABASE_URL to the database whose rollups to rebuild');
  const dataSource = new DataSource(dataSourceOptions(url, {}, 2, 'tally-rollups-rebuild'));
  await dataSource.initialize();
  const started = Date.now();
  try {
    // Only the retention settings matter here (validated as the service validates them).
    const config = loadConfig({ RECORDS_RETENTION_DAYS: env.RECORDS_RETENTION_DAYS, MINUTE_ROLLUP_RETENTION_DAYS: env.MINUTE_ROLLUP_RETENTION_DAYS });
    const totals = await rebuildRollups(dataSource, progressBar(out), { recordsDays: config.recordsRetentionDays, minuteDays: config.minuteRollupRetentionDays });
    out.write(summary(totals, (Date.now() - started) / 1000));
    return totals;
  } finally {
    await dataSource.destroy();
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}

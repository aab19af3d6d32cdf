import { Client } from 'pg';
import { ensurePartitions, listPartitions, maintainPartitions } from '../src/usage/partitions';
import { startTestApp, TestApp } from './helpers/test-app';

const at = (y: number, m: number, d: number, h = 0) => Date.UTC(y, m - 1, d, h) / 1000;

/**
 * Partition maintenance at its edges (SPEC §8): one step that fails does not stop the others, and
 * the per-minute rollup keeps the day past its retention that the folder still writes to.
 */
describe('partition maintenance', () => {
  let t: TestApp;
  beforeAll(async () => {
    // No worker: the test runs maintenance itself.
    t = await startTestApp({ PROCESS_ROLE: 'api' });
  });
  afterAll(() => t.close());

  const names = async (table: 'completion_records' | 'usage_rollups_minute') => (await listPartitions(t.dataSource, table)).map((p) => p.name);

  it('a partition that cannot be dropped is reported; newer ones wait for it (drops stay contiguous from the oldest month), and months ahead are still made', async () => {
    await ensurePartitions(t.dataSource, 'completion_records', [at(2020, 1, 10), at(2020, 2, 10)]);
    // Something the drop cannot get past: a view on the partition.
    await t.dataSource.query('CREATE VIEW keep_p202001 AS SELECT * FROM completion_records_p202001');
    try {
      const now = at(2026, 12, 3, 12);
      const result = await maintainPartitions(t.dataSource, { records: 400, minute: 36_500 }, now);
      expect(result.failed.map((f) => f.step)).toEqual(['drop completion_records_p202001']);
      // A newer month dropped while an older one stays would read to the rebuild as a month that never had records.
      expect(result.dropped.filter((name) => name.startsWith('completion_records_'))).toEqual([]);
      expect(await names('completion_records')).toContain('completion_records_p202002');
      expect(await names('completion_records')).toContain('completion_records_p202702'); // months ahead made
    } finally {
      await t.dataSource.query('DROP VIEW keep_p202001');
    }
    const again = await maintainPartitions(t.dataSource, { records: 400, minute: 36_500 }, at(2026, 12, 3, 12));
    expect(again.failed).toEqual([]);
    expect(again.dropped).toEqual(expect.arrayContaining(['completion_records_p202001', 'completion_records_p202002']));
  });

  it('a drop waits for a long reader of the table (past the lock timeout of the other steps) instead of failing', async () => {
    await ensurePartitions(t.dataSource, 'completion_records', [at(2020, 5, 10)]);
    const reader = new Client({ connectionString: t.db.url });
    await reader.connect();
    try {
      // A report's transaction: it sees the partition, so DETACH … CONCURRENTLY waits for it to end.
      await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await reader.query('SELECT count(*) FROM completion_records');
      const maintenance = maintainPartitions(t.dataSource, { records: 400, minute: 36_500 }, at(2026, 12, 3, 12), 300);
      await new Promise((resolve) => setTimeout(resolve, 1500)); // five times the other steps' lock timeout
      await reader.query('COMMIT');
      const result = await maintenance;
      expect(result.failed).toEqual([]);
      expect(result.dropped).toContain('completion_records_p202005');
    } finally {
      await reader.end();
    }
  });

  it('keeps a per-minute month a day past MINUTE_ROLLUP_RETENTION_DAYS (the folder writes minutes that far back), then drops it', async () => {
    await ensurePartitions(t.dataSource, 'usage_rollups_minute', [at(2026, 10, 15)]);
    // October ends 2026-11-01 00:00. Retention 10 days: at 11-11 12:00 it is 10.5 days old, inside the folder's 11.
    const kept = await maintainPartitions(t.dataSource, { records: 36_500, minute: 10 }, at(2026, 11, 11, 12));
    expect(kept.dropped).not.toContain('usage_rollups_minute_p202610');
    expect(await names('usage_rollups_minute')).toContain('usage_rollups_minute_p202610');
    const dropped = await maintainPartitions(t.dataSource, { records: 36_500, minute: 10 }, at(2026, 11, 12) + 1);
    expect(dropped.dropped).toContain('usage_rollups_minute_p202610');
  });
});

import { ensurePartitions } from '../src/usage/partitions';
import { JOURNAL_TABLE } from '../src/usage/rollup-journal';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { ingestOk, record, T0 } from './helpers/usage';
import { waitFor } from './helpers/wait-for';

const pending = async (t: TestApp) => (await t.dataSource.query(`SELECT count(*)::int AS n FROM ${JOURNAL_TABLE}`))[0].n as number;
const metric = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);

describe('rollup folder (issue 13): the worker moves the journal into the rollups; lag and backlog are metrics', () => {
  it('leaves deltas pending in an API-only process and reports them in /metrics', async () => {
    const t = await startTestApp({ PROCESS_ROLE: 'api' });
    try {
      const acme = await seedOrg(t);
      const ingestKey = await createSystemKey(t, 'ingest');
      await ingestOk(t, ingestKey.key, [record(acme.member.id), record(acme.member.id, { created_at: T0 + 7200, user_id: 'u' })]);
      expect(await pending(t)).toBe(2);
      const text = (await t.get('/metrics', { key: null })).text;
      expect(metric(text, 'tally_rollup_pending_deltas')).toBe(2);
      expect(metric(text, 'tally_rollup_fold_lag_seconds')).toBeGreaterThanOrEqual(0);
      expect(text).toContain('# TYPE tally_rollup_fold_lag_seconds gauge');
      expect(metric(text, 'tally_rollup_fold_held_groups')).toBe(0);
    } finally {
      await t.close();
    }
  });

  it('drains the journal in a process that runs the worker, counting what it folded', async () => {
    const t = await startTestApp({ PROCESS_ROLE: 'all', ROLLUP_FOLD_INTERVAL_MS: '20', ROLLUP_FOLD_BATCH: '2' });
    try {
      const acme = await seedOrg(t);
      const ingestKey = await createSystemKey(t, 'ingest');
      // Five minutes apart: five journal rows, folded two at a time.
      await ingestOk(
        t,
        ingestKey.key,
        Array.from({ length: 5 }, (_v, i) => record(acme.member.id, { created_at: T0 + i * 60 })),
      );
      await waitFor(async () => (await pending(t)) === 0, 'the journal to drain');
      const [minute] = await t.dataSource.query(`SELECT count(*)::int AS rows, SUM(num_model_requests)::int AS n FROM usage_rollups_minute`);
      expect(minute).toEqual({ rows: 5, n: 5 });
      const [day] = await t.dataSource.query(`SELECT count(*)::int AS rows, SUM(num_model_requests)::int AS n FROM usage_rollups_day_by_key`);
      expect(day).toEqual({ rows: 1, n: 5 });
      const text = (await t.get('/metrics', { key: null })).text;
      expect(metric(text, 'tally_rollup_folded_deltas_total')).toBe(5);
      expect(metric(text, 'tally_rollup_pending_deltas')).toBe(0);
      expect(metric(text, 'tally_rollup_fold_lag_seconds')).toBe(0);
    } finally {
      await t.close();
    }
  });

  it('folds again at once after a fold that moved deltas: it pauses only when the journal was empty', async () => {
    const api = await startTestApp({ PROCESS_ROLE: 'api' });
    let worker: TestApp | undefined;
    const locker = api.dataSource.createQueryRunner();
    try {
      const acme = await seedOrg(api);
      const ingestKey = await createSystemKey(api, 'ingest');
      await ingestOk(api, ingestKey.key, [record(acme.member.id), record(acme.member.id, { created_at: T0 + 60 })]);
      // The minute rollup's partition of those records exists, so the first fold needs no second try.
      await ensurePartitions(api.dataSource, 'usage_rollups_minute', [T0]);
      // Lock the pending rows: the worker's first fold waits for them, with its rows chosen.
      await locker.startTransaction();
      await locker.query(`SELECT 1 FROM ${JOURNAL_TABLE} FOR UPDATE`);
      // A pause of a minute (longer than the wait below): only a fold that follows at once can move what comes next.
      worker = await startTestApp({ PROCESS_ROLE: 'all', ROLLUP_FOLD_INTERVAL_MS: '60000' }, { database: api.db });
      await waitFor(
        async () => (await api.dataSource.query(`SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%DELETE FROM ${JOURNAL_TABLE}%'`)).length > 0,
        'the first fold to wait for the locked rows',
      );
      // Deltas that arrive during that fold: it does not see them.
      await ingestOk(api, ingestKey.key, [record(acme.member.id, { created_at: T0 + 120 }), record(acme.member.id, { created_at: T0 + 180 })]);
      expect(await pending(api)).toBe(4);
      await locker.commitTransaction();
      await waitFor(async () => (await pending(api)) === 0, 'the next fold to move the deltas that came during the first');
      const [minute] = await api.dataSource.query(`SELECT count(*)::int AS rows, SUM(num_model_requests)::int AS n FROM usage_rollups_minute`);
      expect(minute).toEqual({ rows: 4, n: 4 });
    } finally {
      try {
        if (locker.isTransactionActive) await locker.rollbackTransaction();
        await locker.release();
      } finally {
        await worker?.close();
        await api.close();
      }
    }
  });

  it('vacuums the journal once it drains, so the next deltas reuse the space of the folded ones (autovacuum may be off)', async () => {
    const t = await startTestApp({ PROCESS_ROLE: 'all', ROLLUP_FOLD_INTERVAL_MS: '20' });
    try {
      const acme = await seedOrg(t);
      const ingestKey = await createSystemKey(t, 'ingest');
      const vacuums = async () =>
        (await t.dataSource.query(`SELECT vacuum_count::int AS n FROM pg_stat_user_tables WHERE relname = $1`, [JOURNAL_TABLE]))[0].n as number;
      const pages = async () =>
        Number((await t.dataSource.query(`SELECT pg_relation_size($1) / current_setting('block_size')::int AS pages`, [JOURNAL_TABLE]))[0].pages);
      // 50 minutes: 50 journal rows, folded (deleted), then vacuumed when the journal is empty.
      const fiftyMinutes = (from: number) => Array.from({ length: 50 }, (_v, i) => record(acme.member.id, { created_at: from + i * 60 }));
      const before = await vacuums();
      await ingestOk(t, ingestKey.key, fiftyMinutes(T0));
      const counted = async () => metric((await t.get('/metrics', { key: null })).text, 'tally_rollup_journal_vacuums_total');
      await waitFor(async () => (await pending(t)) === 0 && (await vacuums()) > before, 'the journal to drain and be vacuumed');
      // PostgreSQL counts the vacuum before the worker has its answer: the worker's count may follow a moment later.
      await waitFor(async () => (await counted()) >= 1, 'the worker to count its vacuum');
      expect(await counted()).toBe(1);
      // The emptied pages are kept (cutting them off would take an ACCESS EXCLUSIVE lock on the
      // journal, which every ingest and spend read would wait for) and the next deltas fill them.
      const used = await pages();
      expect(used).toBeGreaterThan(0);
      await ingestOk(t, ingestKey.key, fiftyMinutes(T0 + 3600));
      await waitFor(async () => (await pending(t)) === 0, 'the second deltas to drain');
      expect(await pages()).toBe(used);
    } finally {
      await t.close();
    }
  });
});

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
});

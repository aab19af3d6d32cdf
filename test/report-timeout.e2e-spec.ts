import { Client } from 'pg';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { DAY, ingestOk, record, T0 } from './helpers/usage';

/**
 * Bounded work (issue 11, point 7): every report query runs under REPORT_STATEMENT_TIMEOUT_MS. A
 * query that cannot finish in time (here: it waits on a lock another session holds, which
 * statement_timeout counts like any other wait) ends as a 503 `report_timeout`, and the
 * connection goes back to the pool clean.
 */
describe('report queries under statement_timeout', () => {
  let t: TestApp;
  let acme: Awaited<ReturnType<typeof seedOrg>>;
  const REPORTS = [
    `/api/v1/llm/usage/costs?start_time=${T0}&end_time=${T0 + DAY}&group_by=model`,
    `/api/v1/llm/usage/completions?start_time=${T0}&end_time=${T0 + DAY}`,
    `/v1/organization/costs?start_time=${T0}&end_time=${T0 + DAY}`,
    `/v1/organization/usage/completions?start_time=${T0}&end_time=${T0 + DAY}`,
  ];

  beforeAll(async () => {
    t = await startTestApp({ REPORT_STATEMENT_TIMEOUT_MS: '300' });
    acme = await seedOrg(t, 'Acme');
    const ingestKey = await createSystemKey(t, 'ingest');
    await ingestOk(t, ingestKey.key, [record(acme.member.id, { created_at: T0 + 60, cost_nano: '5' })]);
  });
  afterAll(() => t.close());

  it('answers 503 report_timeout while a report cannot finish, and 200 again once it can', async () => {
    for (const path of REPORTS) expect((await t.get(path, { key: acme.orgAdmin.key })).status).toBe(200);
    const locker = new Client({ connectionString: t.db.url });
    await locker.connect();
    try {
      const tables: Array<{ tablename: string }> = await locker.query(
        `SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND (tablename LIKE 'usage_rollups%' OR tablename = 'completion_records')`,
      ).then((r) => r.rows);
      expect(tables.length).toBeGreaterThan(2);
      await locker.query('BEGIN');
      await locker.query(`LOCK TABLE ${tables.map((r) => `"${r.tablename}"`).join(', ')} IN ACCESS EXCLUSIVE MODE`);
      for (const path of REPORTS) {
        const res = await t.get(path, { key: acme.orgAdmin.key });
        expect(res.status).toBe(503);
        expect(res.body.error).toEqual({
          type: 'service_unavailable_error',
          code: 'report_timeout',
          message: 'The report did not finish within 300 ms; ask for a shorter range, fewer groups or a smaller page',
          param: null,
        });
      }
    } finally {
      await locker.query('ROLLBACK');
      await locker.end();
    }
    for (const path of REPORTS) {
      const res = await t.get(path, { key: acme.orgAdmin.key });
      expect(res.status).toBe(200);
    }
    // The pooled connections carry no timeout of their own: a session setting would show here.
    const [{ statement_timeout }] = await t.dataSource.query('SHOW statement_timeout');
    expect(statement_timeout).toBe('0');
  });
});

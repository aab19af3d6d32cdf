import { Client } from 'pg';
import { AlertQueuesService } from '../src/alerts/alert-queues.service';
import { seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { waitFor } from './helpers/wait-for';

const BLOCKED_JOBS = 30;

/**
 * Issue 11, point 7: the API and the worker do not starve each other's connection pool. With
 * every job stuck on a lock, the worker holds at most WORKER_DATABASE_POOL_SIZE connections (its
 * own pool), and the API of the same process keeps answering from its own.
 */
describe('connection pools: the worker cannot starve the API in one process', () => {
  let t: TestApp;
  let locker: Client;

  beforeAll(async () => {
    t = await startTestApp({ PROCESS_ROLE: 'all', ALERT_EVALUATION_INTERVAL_MS: '200', WORKER_DATABASE_POOL_SIZE: '4', LOG_LEVEL: 'warn' });
    locker = new Client({ connectionString: t.db.url });
    await locker.connect();
  });
  afterAll(async () => {
    await locker.query('ROLLBACK').catch(() => undefined);
    await locker.end();
    await t.close();
  });

  it('every job blocked on a lock: the API still answers, the worker holds only its own pool', async () => {
    const org = await seedOrg(t, 'Pools');
    const budget = await t.put(`/api/v1/llm/budgets/org/${org.org.id}`, { period: 'monthly', limit_kind: 'tokens', limit: 10, thresholds: [{ pct: 50, action: 'alert' }] });
    const ids = Array.from({ length: BLOCKED_JOBS }, (_, i) => `alrt_poolTest${String(i).padStart(16, '0')}`);
    await t.dataSource.query(
      `INSERT INTO alerts (org_id, id, budget_id, window_start, window_end, threshold_pct, threshold_action, body, state, created_at)
       SELECT (SELECT org_id FROM budgets WHERE id = $2), id, $2, now() - (n || ' days')::interval, now(), 50, 'alert', '{}', 'delivered', now()
       FROM unnest($1::varchar[]) WITH ORDINALITY AS a(id, n)`,
      [ids, budget.body.id],
    );
    // Every delivery job and every evaluate-all now waits on this lock, each holding a connection.
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE alerts IN ACCESS EXCLUSIVE MODE');
    await t.app.get(AlertQueuesService).deliverAlerts(ids);
    // pg_stat_activity is a snapshot per transaction: clear it before each look.
    const waiting = async (appName?: string) =>
      (await locker.query('SELECT pg_stat_clear_snapshot()')) &&
      (
        await locker.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'${appName ? ' AND application_name = $1' : ''}`,
          appName ? [appName] : [],
        )
      ).rows[0].n as number;
    await waitFor(async () => (await waiting()) >= 4, 'the worker\'s jobs to block on the lock');

    for (let i = 0; i < 5; i++) {
      expect((await t.get('/api/v1/llm/budgets')).status).toBe(200);
      expect((await t.get(`/api/v1/llm/budgets/${budget.body.id}`)).status).toBe(200);
    }
    expect(await waiting('tally-worker')).toBe(4);
    expect(await waiting()).toBe(4);

    await locker.query('COMMIT');
    await waitFor(async () => (await waiting()) === 0, 'the jobs to go on');
  });
});

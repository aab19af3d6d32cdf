import pino from 'pino';
import { Webhook } from 'standardwebhooks';
import { alertBody } from '../src/alerts/alert-body';
import { BudgetEvaluator } from '../src/budgets/budget-evaluator';
import { Budget } from '../src/budgets/budget.entity';
import { RunningProcess, startProcess } from '../src/bootstrap';
import { loadConfig } from '../src/config/app-config';
import { alertRows, monthlyBudget, settle, spend } from './helpers/alerts';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { startReceiver, WebhookReceiver } from './helpers/webhook-receiver';
import { waitFor } from './helpers/wait-for';

/**
 * One API+worker app and two worker-only processes on the same database and Redis prefix, each
 * running evaluate-all every 100 ms, plus evaluations forced from every process at once.
 */
describe('alerts: exactly one alert per (budget, window, threshold) across workers (SPEC §5)', () => {
  let t: TestApp;
  let workers: RunningProcess[];
  let hook: WebhookReceiver;
  let ingestKey: string;
  let org: Awaited<ReturnType<typeof seedOrg>>;
  let budget: { id: string; webhook_secret: string };
  const apps = () => [t.app, ...workers.map((w) => w.app)];
  const ids = () => hook.requests.map((r) => r.headers['webhook-id']);

  beforeAll(async () => {
    const env = { ALERT_EVALUATION_INTERVAL_MS: '100', WEBHOOK_RETRY_BASE_MS: '50' };
    t = await startTestApp(env);
    const shared = {
      ...env,
      DATABASE_URL: t.db.url,
      REDIS_URL: t.config.redisUrl,
      REDIS_PREFIX: t.config.redisPrefix,
      SECRETS_KEY: t.config.secretsKey!.toString('hex'),
      ADMIN_API_KEY: t.adminKey,
      WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
      PROCESS_ROLE: 'worker',
      WORKER_METRICS_PORT: '0', // two workers in one process: no metrics port each
    };
    workers = [];
    for (let i = 0; i < 2; i++) workers.push(await startProcess(loadConfig(shared), pino({ level: 'silent' })));
    hook = await startReceiver();
    ingestKey = (await createSystemKey(t, 'ingest')).key;
    org = await seedOrg(t, 'Once');
    const res = await t.put(
      `/api/v1/llm/budgets/org/${org.org.id}`,
      monthlyBudget(1, {
        webhook_url: hook.url,
        thresholds: [
          { pct: 50, action: 'alert' },
          { pct: 80, action: 'alert' },
          { pct: 100, action: 'block' },
        ],
      }),
    );
    budget = res.body;
  });
  afterAll(async () => {
    await hook.close();
    for (const w of workers) await w.stop();
    await t.close();
  });

  it('a crossing alerts once, however many workers evaluate it how often', async () => {
    await spend(t, ingestKey, org.member.id, 600_000_000n);
    await waitFor(() => hook.requests.length >= 1, 'the first webhook');
    await settle(apps(), 3);
    expect((await alertRows(t, budget.id)).map((a) => [a.threshold_pct, a.state])).toEqual([['50.000000', 'delivered']]);
    expect(hook.requests).toHaveLength(1);
    expect(new Webhook(budget.webhook_secret).verify(hook.requests[0].body, hook.requests[0].headers)).toMatchObject({ data: { threshold: { pct: 50 } } });
  });

  it('a second threshold crossed later alerts again, once', async () => {
    await spend(t, ingestKey, org.member.id, 250_000_000n); // 85 %
    await waitFor(() => hook.requests.length >= 2, 'the second webhook');
    await settle(apps(), 3);
    const rows = await alertRows(t, budget.id);
    expect(rows.map((a) => [a.threshold_pct, a.state])).toEqual([
      ['50.000000', 'delivered'],
      ['80.000000', 'delivered'],
    ]);
    expect(ids()).toEqual(rows.map((a) => a.id));
  });

  it('raising the limit and crossing the same thresholds again in the window does not re-fire them', async () => {
    await t.put(`/api/v1/llm/budgets/org/${org.org.id}`, monthlyBudget(2, { webhook_url: hook.url, thresholds: [{ pct: 50, action: 'alert' }, { pct: 80, action: 'alert' }, { pct: 100, action: 'block' }] })); // 42.5 %
    await spend(t, ingestKey, org.member.id, 900_000_000n); // 1.75 of 2: 87.5 %, past 50 and 80 again
    await settle(apps(), 3);
    expect((await alertRows(t, budget.id)).map((a) => a.threshold_pct)).toEqual(['50.000000', '80.000000']);
    expect(hook.requests).toHaveLength(2);

    await spend(t, ingestKey, org.member.id, 300_000_000n); // 102.5 %: the block threshold, new
    await waitFor(() => hook.requests.length >= 3, 'the block alert');
    await settle(apps(), 3);
    expect((await alertRows(t, budget.id)).map((a) => a.threshold_pct)).toEqual(['50.000000', '80.000000', '100.000000']);
    expect(hook.requests).toHaveLength(3);
    expect(new Set(ids()).size).toBe(3);
  });

  it('a new window alerts again', async () => {
    // Pretend the 50 % alert fired in the previous window: the current window has none left.
    await t.dataSource.query(`UPDATE alerts SET window_start = window_start - interval '1 month' WHERE budget_id = $1 AND threshold_pct = 50`, [budget.id]);
    await waitFor(() => hook.requests.length >= 4, 'the 50 % alert of the current window');
    await settle(apps(), 2);
    const rows = await alertRows(t, budget.id);
    expect(rows.filter((a) => a.threshold_pct === '50.000000')).toHaveLength(2);
    expect(hook.requests).toHaveLength(4);
    expect(ids()[3]).not.toBe(ids()[0]);
  });

  it('an alert stored without its delivery job (a crash between insert and enqueue) is delivered by the next evaluation, once', async () => {
    const [entity] = await t.dataSource.getRepository(Budget).findBy({ id: budget.id });
    const [evaluation] = await t.app.get(BudgetEvaluator).evaluateCurrent([entity]);
    const id = 'alrt_crashedBetweenInsertAndQ';
    const body = alertBody(id, new Date(), evaluation, { pct: 30, action: 'alert' });
    await t.dataSource.query(
      `INSERT INTO alerts (org_id, id, budget_id, window_start, window_end, threshold_pct, threshold_action, body, state, created_at)
       VALUES ($1, $2, $3, $4, $5, 30, 'alert', $6, 'pending', now())`,
      [entity.orgId, id, budget.id, evaluation.window.start, evaluation.window.end, body],
    );
    await waitFor(() => ids().includes(id), 'the repaired delivery');
    await settle(apps(), 2);
    expect(ids().filter((x) => x === id)).toHaveLength(1);
    expect(hook.requests.find((r) => r.headers['webhook-id'] === id)!.body).toBe(body);
    expect((await alertRows(t, budget.id)).find((a) => a.id === id)!.state).toBe('delivered');
  });
});

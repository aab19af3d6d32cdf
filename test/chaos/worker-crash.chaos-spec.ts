import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Webhook } from 'standardwebhooks';
import { freePort } from '../../src/database/embedded-postgres';
import { redisAnswers } from '../../src/redis/redis';
import { monthlyBudget, spend } from '../helpers/alerts';
import { createSystemKey, seedOrg, startTestApp, TestApp } from '../helpers/test-app';
import { waitFor } from '../helpers/wait-for';
import { startReceiver, WebhookReceiver } from '../helpers/webhook-receiver';

/**
 * SPEC §5 under crashes: worker processes are SIGKILLed again and again during evaluation and
 * delivery, and Redis is restarted once, while ingest goes on. Every crossing must be alerted
 * exactly once in the database and delivered at least once (any duplicate with the same
 * webhook-id and body). Needs `npm run build` (workers run from dist/), as `npm run test:chaos` does.
 */
const ORGS = 6;
const THRESHOLDS = [25, 50, 75, 100];
const STEPS = 8;
const WORKER = resolve(__dirname, '..', '..', 'dist', 'src', 'worker.js');

describe('chaos: worker crashes and a Redis restart during evaluation and delivery', () => {
  let redisPort: number;
  let redis: ChildProcess;
  const redisDir = mkdtempSync(join(tmpdir(), 'tally-chaos-redis-'));
  let t: TestApp;
  let hook: WebhookReceiver;
  const workers: ChildProcess[] = [];
  let kills = 0;

  const startRedis = async () => {
    // With an append-only file, as a production Redis for BullMQ runs: a restart keeps the queues.
    redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--dir', redisDir], { stdio: 'ignore' });
    await waitFor(() => redisAnswers(`redis://127.0.0.1:${redisPort}`, 300), 'redis to answer');
  };
  const workerEnv = () => ({
    ...process.env,
    DATABASE_URL: t.db.url,
    REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    REDIS_PREFIX: t.config.redisPrefix,
    SECRETS_KEY: t.config.secretsKey!.toString('hex'),
    ADMIN_API_KEY: t.adminKey,
    WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
    ALERT_EVALUATION_INTERVAL_MS: '200',
    WEBHOOK_RETRY_BASE_MS: '50',
    LOG_LEVEL: 'error',
    WORKER_METRICS_PORT: '0', // several workers on one machine
  });
  const spawnWorker = () => {
    const child = spawn(process.execPath, [WORKER], { env: workerEnv(), stdio: 'ignore' });
    workers.push(child);
    return child;
  };
  const killOne = () => {
    const alive = workers.filter((w) => w.exitCode === null && w.signalCode === null);
    const victim = alive[Math.floor(Math.random() * alive.length)];
    if (victim) {
      victim.kill('SIGKILL');
      kills++;
    }
  };

  beforeAll(async () => {
    redisPort = await freePort();
    await startRedis();
    t = await startTestApp({ REDIS_URL: `redis://127.0.0.1:${redisPort}`, PROCESS_ROLE: 'api', ALERT_EVALUATION_INTERVAL_MS: '200', WEBHOOK_RETRY_BASE_MS: '50' });
    // One receiver that fails every third request, so deliveries are retried across crashes.
    hook = await startReceiver();
    hook.replies.push(...Array.from({ length: 200 }, (_, i) => (i % 3 === 0 ? 500 : 200)));
    spawnWorker();
    spawnWorker();
  });

  afterAll(async () => {
    for (const w of workers) if (w.exitCode === null) w.kill('SIGKILL');
    await hook?.close();
    await t?.close();
    redis?.kill('SIGKILL');
  });

  it('alerts every crossing exactly once and delivers it at least once', async () => {
    const ingestKey = (await createSystemKey(t, 'ingest')).key;
    const budgets: Array<{ id: string; secret: string; keyId: string }> = [];
    for (let i = 0; i < ORGS; i++) {
      const org = await seedOrg(t, `Chaos ${i}`);
      const res = await t.put(`/api/v1/llm/budgets/org/${org.org.id}`, monthlyBudget(1, { webhook_url: hook.url, thresholds: THRESHOLDS.map((pct) => ({ pct, action: 'alert' })) }));
      budgets.push({ id: res.body.id, secret: res.body.webhook_secret, keyId: org.member.id });
    }
    for (let step = 0; step < STEPS; step++) {
      // Each step spends 1/8 of every limit: the thresholds are crossed at steps 2, 4, 6 and 8.
      await Promise.all(budgets.map((b) => spend(t, ingestKey, b.keyId, 125_000_000n)));
      killOne();
      spawnWorker();
      if (step === STEPS / 2) {
        redis.kill('SIGTERM');
        await new Promise((r) => redis.once('exit', r));
        await startRedis();
      }
      await new Promise((r) => setTimeout(r, 150)); // let the workers get into evaluation and delivery
      killOne();
      spawnWorker();
    }

    const expected = ORGS * THRESHOLDS.length;
    await waitFor(async () => {
      const [{ n }] = await t.dataSource.query(`SELECT count(*)::int AS n FROM alerts WHERE state = 'delivered'`);
      return n === expected;
    }, 'every alert to be delivered', 120_000);

    const rows: Array<{ id: string; budget_id: string; threshold_pct: string }> = await t.dataSource.query('SELECT id, budget_id, threshold_pct FROM alerts');
    expect(rows).toHaveLength(expected); // exactly once in the database
    expect(new Set(rows.map((r) => `${r.budget_id}/${Number(r.threshold_pct)}`)).size).toBe(expected);

    const received = new Map<string, string[]>();
    for (const request of hook.requests) {
      if (!received.has(request.headers['webhook-id'])) received.set(request.headers['webhook-id'], []);
      received.get(request.headers['webhook-id'])!.push(request.body);
    }
    for (const row of rows) {
      const bodies = received.get(row.id);
      expect({ alert: row.id, delivered: (bodies?.length ?? 0) > 0 }).toEqual({ alert: row.id, delivered: true });
      expect(new Set(bodies).size).toBe(1); // retries and duplicates carry the same bytes
    }
    for (const request of hook.requests) {
      const budget = budgets.find((b) => request.body.includes(b.id))!;
      expect(() => new Webhook(budget.secret).verify(request.body, request.headers)).not.toThrow();
    }
    expect(kills).toBeGreaterThanOrEqual(STEPS * 2 - 1);
    // eslint-disable-next-line no-console
    console.log(`chaos: ${kills} SIGKILLs, 1 Redis restart, ${rows.length} alerts, ${hook.requests.length} webhook requests`);
  });
});

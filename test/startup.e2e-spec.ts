import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { sealSecret } from '../src/common/secret-box';
import { waitFor } from './helpers/wait-for';
import { bootstrapAdminKey } from '../src/auth/admin-bootstrap';
import { startProcess } from '../src/bootstrap';
import { loadConfig } from '../src/config/app-config';
import { createDataSource } from '../src/database/data-source';
import { hashApiKeySecret } from '../src/auth/secrets';
import { redisAnswers } from '../src/redis/redis';
import { createTestDatabase } from './helpers/test-database';
import { freePort } from './helpers/webhook-receiver';
import { deleteRedisPrefix, randomAdminKey, startTestApp } from './helpers/test-app';

describe('start-up (SPEC §1)', () => {
  it('ADMIN_API_KEY: the key exists after start-up, once, however often the service starts', async () => {
    const db = await createTestDatabase();
    const adminKey = randomAdminKey();
    try {
      for (let i = 0; i < 2; i++) {
        const t = await startTestApp({ ADMIN_API_KEY: adminKey }, { database: db });
        const res = await t.post('/api/v1/orgs', { name: `Acme ${i}` }, { key: adminKey });
        expect(res.status).toBe(201);
        await t.close();
      }
      const ds = createDataSource(db.url);
      await ds.initialize();
      const rows = await ds.query('SELECT role, org_id FROM api_keys WHERE secret_hash = $1', [hashApiKeySecret(adminKey)]);
      await ds.destroy();
      expect(rows).toEqual([{ role: 'cluster_admin', org_id: 'org_system' }]);
    } finally {
      await db.drop();
    }
  });

  it('without ADMIN_API_KEY, generates one admin key on a fresh database only', async () => {
    const db = await createTestDatabase();
    const ds = createDataSource(db.url);
    await ds.initialize();
    try {
      const [first, second] = await Promise.all([bootstrapAdminKey(ds, undefined), bootstrapAdminKey(ds, undefined)]);
      const generated = [first, second].filter((o) => o.kind === 'generated');
      expect(generated).toHaveLength(1);
      expect([first, second].map((o) => o.kind).sort()).toEqual(['admins-exist', 'generated']);
      const secret = (generated[0] as { secret: string }).secret;
      expect(secret).toMatch(/^mk-[A-Za-z0-9]{32,}$/);
      expect(await ds.query('SELECT count(*)::int AS n FROM api_keys WHERE secret_hash = $1', [hashApiKeySecret(secret)])).toEqual([
        { n: 1 },
      ]);
      expect((await bootstrapAdminKey(ds, undefined)).kind).toBe('admins-exist');
    } finally {
      await ds.destroy();
      await db.drop();
    }
  });

  it('PROCESS_ROLE=worker runs without the API, serving /metrics and /health/live on WORKER_METRICS_PORT; PROCESS_ROLE=api listens', async () => {
    const db = await createTestDatabase();
    const common = {
      DATABASE_URL: db.url,
      REDIS_URL: process.env.TEST_REDIS_URL!,
      REDIS_PREFIX: `test-role-${Date.now()}`,
      ADMIN_API_KEY: randomAdminKey(),
      SECRETS_KEY: 'ab'.repeat(32),
      PORT: '0',
      HOST: '127.0.0.1',
    };
    const logger = pino({ level: 'silent' });
    const metricsPort = await freePort();
    const worker = await startProcess(loadConfig({ ...common, PROCESS_ROLE: 'worker', WORKER_METRICS_PORT: String(metricsPort) }), logger);
    const api = await startProcess(loadConfig({ ...common, PROCESS_ROLE: 'api' }), logger);
    try {
      expect('getHttpServer' in worker.app).toBe(false);
      const url = await (api.app as unknown as { getUrl(): Promise<string> }).getUrl();
      expect((await fetch(`${url}/health/ready`)).status).toBe(200);

      const workerUrl = `http://127.0.0.1:${metricsPort}`;
      const live = await fetch(`${workerUrl}/health/live`);
      expect(live.status).toBe(200);
      expect(await live.json()).toEqual({ status: 'ok' });
      const metrics = await fetch(`${workerUrl}/metrics`);
      expect(metrics.status).toBe(200);
      expect(metrics.headers.get('content-type')).toMatch(/^text\/plain/);
      const text = await metrics.text();
      // The worker's own figures: queue depths read on scrape, failed jobs per queue, process metrics.
      for (const queue of ['alerts-evaluate', 'alerts-deliver']) {
        expect(text).toMatch(new RegExp(`^tally_queue_jobs\\{queue="${queue}",state="waiting"\\} \\d+$`, 'm'));
        expect(text).toMatch(new RegExp(`^tally_jobs_failed_total\\{queue="${queue}"\\} 0$`, 'm'));
      }
      expect(text).toMatch(/^tally_process_resident_memory_bytes \d+/m);
      // Nothing of the API is served on that port.
      const other = await fetch(`${workerUrl}/api/v1/orgs`);
      expect(other.status).toBe(404);
      expect(((await other.json()) as { error: { code: string } }).error.code).toBe('route_not_found');
    } finally {
      await worker.stop();
      await api.stop();
      await db.drop();
      await deleteRedisPrefix(common.REDIS_URL, common.REDIS_PREFIX); // the worker's job scheduler and queues
    }
  });

  it('with DATABASE_URL set, a Redis that does not answer at a loopback REDIS_URL is started for development (SPEC §1), and stops with the process', async () => {
    const db = await createTestDatabase();
    const port = await freePort();
    const url = `redis://127.0.0.1:${port}`;
    try {
      const config = loadConfig({ DATABASE_URL: db.url, REDIS_URL: url, SECRETS_KEY: 'ab'.repeat(32), PROCESS_ROLE: 'api', PORT: '0', HOST: '127.0.0.1' });
      const running = await startProcess(config, pino({ level: 'silent' }));
      expect(await redisAnswers(url)).toBe(true);
      await running.stop();
      await waitFor(async () => !(await redisAnswers(url)), 'the local redis-server to stop with the process');
    } finally {
      await db.drop();
    }
  });

  it('a Redis that answers with an error (a database index it does not have) stops start-up naming REDIS_URL', async () => {
    const db = await createTestDatabase();
    try {
      const url = new URL(process.env.TEST_REDIS_URL!);
      url.pathname = '/99';
      const config = loadConfig({ DATABASE_URL: db.url, REDIS_URL: url.toString(), SECRETS_KEY: 'ab'.repeat(32), PROCESS_ROLE: 'api', PORT: '0', HOST: '127.0.0.1' });
      await expect(startProcess(config, pino({ level: 'silent' }))).rejects.toThrow(/refused: .*DB index is out of range.*check REDIS_URL/);
    } finally {
      await db.drop();
    }
  });

  it('with DATABASE_URL set and SECRETS_KEY unset, generates a key into DATA_DIR (SPEC §1); a key that cannot open the stored webhook secrets stops start-up, saying why', async () => {
    const db = await createTestDatabase();
    const dataDir = mkdtempSync(join(tmpdir(), 'tally-secrets-'));
    const prefix = `test-secrets-${Date.now()}`;
    const configOf = (env: Record<string, string>) =>
      loadConfig({ DATABASE_URL: db.url, REDIS_URL: process.env.TEST_REDIS_URL!, REDIS_PREFIX: prefix, DATA_DIR: dataDir, PROCESS_ROLE: 'api', PORT: '0', HOST: '127.0.0.1', WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', ...env });
    try {
      const generated = await startProcess(configOf({}), pino({ level: 'silent' }));
      const key = readFileSync(join(dataDir, 'secrets.key'), 'utf8').trim();
      expect(key).toMatch(/^[0-9a-f]{64}$/);
      // A webhook secret sealed with it.
      const ds = createDataSource(db.url);
      await ds.initialize();
      await ds.query(`INSERT INTO orgs (id, name) VALUES ('org_secrets', 'Secrets')`);
      await ds.query(
        `INSERT INTO budgets (id, org_id, scope, scope_id, owner, period, limit_kind, limit_value, thresholds, webhook_url, webhook_secret_sealed)
         VALUES ('bud_secrets', 'org_secrets', 'org', 'org_secrets', 'org', 'monthly', 'tokens', 10, '[{"pct":100,"action":"alert"}]', 'http://127.0.0.1:9/hook', $1)`,
        [sealSecret(Buffer.from(key, 'hex'), 'whsec_test')],
      );
      await ds.destroy();
      await generated.stop();
      // The same key (from the file, or given): starts. Another: refused, saying why.
      await (await startProcess(configOf({}), pino({ level: 'silent' }))).stop();
      await (await startProcess(configOf({ SECRETS_KEY: key }), pino({ level: 'silent' }))).stop();
      await expect(startProcess(configOf({ SECRETS_KEY: 'cd'.repeat(32) }), pino({ level: 'silent' }))).rejects.toThrow(
        /SECRETS_KEY does not open the webhook secrets stored in this database: they were sealed with another key/,
      );
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
      await deleteRedisPrefix(process.env.TEST_REDIS_URL!, prefix);
      await db.drop();
    }
  });
});

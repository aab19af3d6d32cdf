import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Logger } from '@nestjs/common';
import Redis, { Cluster } from 'ioredis';
import { CoherentCache } from '../src/redis/coherent-cache';
import { redisAnswers, targetAnswers } from '../src/redis/redis';
import { REDIS } from '../src/redis/redis.module';
import { guardRedis } from '../src/redis/redis-unavailable';
import { monthlyBudget, spend } from './helpers/alerts';
import { blockingBudget, nowSeconds, RESERVATIONS, reservationBody, reserve } from './helpers/reservations';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { ingestOk, record } from './helpers/usage';
import { waitFor } from './helpers/wait-for';
import { freePort, startReceiver, WebhookReceiver } from './helpers/webhook-receiver';
import { pauseThisProcess } from './helpers/pause';

/**
 * SPEC §8: Redis may be a Redis Cluster. Starts a real three-master cluster from the Debian
 * redis-server binary on three free ports, runs Tally against it (REDIS_CLUSTER_NODES), and goes
 * ingest → threshold alert (webhook received) → budget check (blocked), with rate limiting on
 * (its Lua script), budget state (MGET, pipelined Lua) and BullMQ queues all in the cluster.
 */
describe('Redis Cluster: ingest → alert → check against three masters', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tally-redis-cluster-'));
  const servers: ChildProcess[] = [];
  let nodes: string;
  let t: TestApp;
  let hook: WebhookReceiver;

  beforeAll(async () => {
    const ports = [await freePort(), await freePort(), await freePort()];
    for (const port of ports) {
      servers.push(
        spawn(
          'redis-server',
          ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--save', '', '--appendonly', 'no', '--dir', dir],
          { stdio: 'ignore' },
        ),
      );
    }
    for (const port of ports) await waitFor(() => redisAnswers(`redis://127.0.0.1:${port}`, 300), `redis-server on ${port}`);
    const created = spawnSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], {
      encoding: 'utf8',
    });
    if (created.status !== 0) throw new Error(`redis-cli --cluster create failed: ${created.stdout}${created.stderr}`);
    nodes = ports.map((p) => `127.0.0.1:${p}`).join(',');
    const clusterNodes = ports.map((port) => ({ host: '127.0.0.1', port }));
    await waitFor(() => targetAnswers({ redisUrl: 'redis://127.0.0.1', redisClusterNodes: clusterNodes }, 1000), 'the cluster state to be ok');

    hook = await startReceiver();
    t = await startTestApp({
      REDIS_CLUSTER_NODES: nodes,
      REDIS_PREFIX: 'tallyc', // the cluster is thrown away: nothing to clean up in the shared Redis
      RATE_LIMIT_PER_SECOND: '1000',
      ALERT_EVALUATION_INTERVAL_MS: '3600000',
      WEBHOOK_RETRY_BASE_MS: '50',
    });
  });

  afterAll(async () => {
    await t?.close();
    await hook?.close();
    for (const server of servers) server.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('alerts through BullMQ on the cluster, blocks in the check, and keeps every key of the deployment in one slot', async () => {
    const ingestKey = (await createSystemKey(t, 'ingest')).key;
    const org = await seedOrg(t, 'Clustered');
    const key = await org.make('member');
    const budget = await t.put(`/api/v1/llm/budgets/apikey/${key.id}`, monthlyBudget(1, { webhook_url: hook.url }));
    expect(budget.status).toBe(200);
    const check = () => t.post('/api/v1/llm/budgets/check', { api_key_id: key.id }, { key: ingestKey });
    expect((await check()).body).toEqual({ allowed: true, blocked_by: [] });

    await spend(t, ingestKey, key.id, 600_000_000n); // 60 %: the 50 % alert
    await waitFor(() => hook.requests.length === 1, 'the 50 % webhook');
    expect(JSON.parse(hook.requests[0].body)).toMatchObject({ type: 'budget.threshold.crossed', data: { threshold: { pct: 50, action: 'alert' } } });

    await spend(t, ingestKey, key.id, 500_000_000n); // 110 %: blocked
    await waitFor(async () => (await check()).body.allowed === false, 'the check to block');
    expect((await check()).body.blocked_by).toEqual([expect.objectContaining({ budget_id: budget.body.id, scope: 'apikey' })]);
    await waitFor(() => hook.requests.length === 2, 'the 100 % webhook');

    // Reservations: the admission, settle and rebuild scripts run on the cluster (their keys are
    // under the deployment's {tallyc} tag too, whatever {org_…} follows it).
    const capped = await org.make('member');
    const cap = await t.put(`/api/v1/llm/budgets/apikey/${capped.id}`, blockingBudget('tokens', 1_000));
    expect(cap.status).toBe(200);
    const held = await reserve(t, ingestKey, reservationBody(capped.id, { input_tokens: 400, max_output_tokens: 600 }));
    expect(held.body).toMatchObject({ status: 'held', granted_output_tokens: 600, budgets: [{ budget_id: cap.body.id, committed: '0', held: '1000' }] });
    expect((await reserve(t, ingestKey, reservationBody(capped.id))).body).toMatchObject({ status: 'denied', denied_by: [{ reason: 'budget_exhausted' }] });
    await ingestOk(t, ingestKey, [record(capped.id, { input_tokens: 400, output_tokens: 100, created_at: nowSeconds(), reservation_id: held.body.id })]);
    expect((await t.get(`${RESERVATIONS}/${held.body.id}`, { key: ingestKey })).body.status).toBe('settled');
    const after = await reserve(t, ingestKey, reservationBody(capped.id, { input_tokens: 100, max_output_tokens: 1_000 }));
    expect(after.body).toMatchObject({ status: 'held', granted_output_tokens: 400, budgets: [{ committed: '500', held: '500' }] });

    // Every key Tally wrote carries the {tallyc} hash tag: one slot, so no command spans slots.
    const cluster = new Cluster(nodes.split(',').map((n) => ({ host: '127.0.0.1', port: Number(n.split(':')[1]) })));
    cluster.on('error', () => undefined);
    try {
      await cluster.ping();
      const keys: string[] = [];
      for (const node of cluster.nodes('master')) keys.push(...(await node.keys('*')));
      expect(keys.length).toBeGreaterThan(3);
      expect(keys.filter((k) => !k.startsWith('{tallyc}:'))).toEqual([]);
      expect(keys.some((k) => k.startsWith('{tallyc}:rsv:{'))).toBe(true);
      expect(keys.some((k) => k.includes(':bull:') || /\{tallyc\}:[a-z-]+:(meta|id|events|completed|wait|marker)/.test(k))).toBe(true);
    } finally {
      cluster.disconnect();
    }
  });

  it('a subscription that moves to another node (its connection lost) empties the coherent cache until it is back', async () => {
    const ports = nodes.split(',').map((n) => Number(n.split(':')[1]));
    const client = new Cluster(ports.map((port) => ({ host: '127.0.0.1', port })));
    const cache = new CoherentCache<string>(client, {
      channel: '{tallyc}:test-cache',
      onMessage: (payload) => cache.drop([payload]),
      ttlMs: 60_000,
      maxEntries: 10,
      logger: new Logger('test'),
      lostWarning: 'lost',
    });
    await cache.start();
    try {
      const fill = () => {
        cache.set('k', 'cached', cache.snapshot());
        return cache.get('k') === 'cached' || null;
      };
      await waitFor(fill, 'the cache to take entries');
      // The node connection holding the subscription goes (ioredis picks another node and
      // re-subscribes, telling the Cluster object nothing): what was published meanwhile is lost.
      for (const port of ports) {
        const node = new Redis({ host: '127.0.0.1', port });
        await node.client('KILL', 'TYPE', 'pubsub').finally(() => node.disconnect());
      }
      await waitFor(() => cache.get('k') === undefined || null, 'the cache to be emptied', 5_000);
      await waitFor(fill, 'the cache to take entries again');
    } finally {
      await cache.stop();
      client.disconnect();
    }
  });

  it('a pause of this process longer than the command timeout is not an outage; masters that stop answering still are', async () => {
    const client = t.app.get<Cluster>(REDIS);
    const keyOfDeployment = `{tallyc}:pause-probe`;
    await client.set(keyOfDeployment, 'here');
    const inFlight = Promise.all([guardRedis(client, () => client.get(keyOfDeployment)), guardRedis(client, () => client.pipeline().get(keyOfDeployment).exec())]);
    pauseThisProcess(t.config.redisCommandTimeoutMs + 300);
    expect(await inFlight).toEqual(['here', [[null, 'here']]]);
    expect(await guardRedis(client, () => client.get(keyOfDeployment))).toBe('here'); // not refused

    for (const server of servers) server.kill('SIGSTOP');
    try {
      await expect(guardRedis(client, () => client.get(keyOfDeployment))).rejects.toMatchObject({ name: 'RedisUnavailableError', cause: { message: 'Command timed out' } });
    } finally {
      for (const server of servers) server.kill('SIGCONT');
    }
    await waitFor(() => guardRedis(client, () => client.get(keyOfDeployment)).catch(() => undefined), 'the cluster to be served again');
  });
});

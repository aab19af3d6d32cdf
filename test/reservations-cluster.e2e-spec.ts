import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Redis, { Cluster } from 'ioredis';
import type { AppConfig } from '../src/config/app-config';
import { freePort } from '../src/database/embedded-postgres';
import { redisAnswers } from '../src/redis/redis';
import { RedisKeys } from '../src/redis/redis.module';
import { ReservationCounters } from '../src/reservations/reservation-counters';
import { CounterWindow } from '../src/reservations/reservation-counter-types';
import { waitFor } from './helpers/wait-for';

/**
 * The reservation scripts on a real Redis Cluster (three private redis-server nodes): every key an
 * admission, a settle or a rebuild touches carries the org's hash tag, so each script runs on one
 * node without a CROSSSLOT error, for orgs whose keys live on different nodes.
 */
describe('reservation counters on a Redis Cluster', () => {
  const nodes: ChildProcess[] = [];
  let cluster: Cluster;
  let counters: ReservationCounters;

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tally-cluster-'));
    const ports = [await freePort(), await freePort(), await freePort()];
    for (const port of ports) {
      nodes.push(
        spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' }),
      );
    }
    for (const port of ports) await waitFor(() => redisAnswers(`redis://127.0.0.1:${port}`, 300), `cluster node ${port}`);
    execFileSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], { stdio: 'ignore' });
    cluster = new Redis.Cluster(ports.map((port) => ({ host: '127.0.0.1', port })));
    await waitFor(async () => (await cluster.cluster('INFO')).includes('cluster_state:ok'), 'the cluster to be ok');
    counters = new ReservationCounters(cluster as unknown as Redis, new RedisKeys({ redisPrefix: 'tally' } as AppConfig));
  });
  afterAll(async () => {
    cluster?.disconnect();
    for (const node of nodes) node.kill('SIGKILL');
  });

  it('admits, settles and rebuilds per org, on whichever node holds the org', async () => {
    const orgs = ['org_3ZkQ9mW2pL8xYc4RtV7bN1sD', 'org_9pLm3QxW7vR2kT8cY4nB6sDz', 'org_Qw8Er7Ty6Ui5Op4As3Df2Gh1'];
    const slots = await Promise.all(orgs.map(async (orgId) => Number(await cluster.cluster('KEYSLOT', counters.windowKeys({ orgId, budgetId: 'b', epoch: '0', start: 0, end: 1 })[0]))));
    expect(new Set(slots).size).toBe(3);
    const start = Math.floor(Date.now() / 86_400_000) * 86_400;
    for (const orgId of orgs) {
      const window = (budgetId: string): CounterWindow => ({ orgId, budgetId, epoch: '0', start, end: start + 86_400 });
      const budgets = [window('bud_key'), window('bud_org')];
      const admit = (reservationId: string, requestId: string) =>
        counters.admit({
          orgId,
          apiKeyId: 'key_a',
          requestId,
          reservationId,
          ttlSeconds: 600,
          inputTokens: 400,
          maxOutputTokens: 4096,
          minOutputTokens: 1,
          budgets: budgets.map((w, i) => ({ window: w, kind: 'tokens', blockLimit: i === 0 ? 1000n : 100_000n, q1: 0n, r1: 0n, qo: 0n, ro: 0n })),
        });
      expect(await admit('res_1', 'r1')).toEqual({ kind: 'unloaded', windows: budgets });
      const tokens = await counters.beginLoad(budgets);
      for (const [i, w] of budgets.entries()) expect(await counters.finishLoad(w, 0n, [], [], '7', tokens[i])).toBe(true);
      const granted = await admit('res_1', 'r1');
      expect(granted).toMatchObject({ kind: 'decided', held: true, granted: 600 });
      // Each window reports the generation its load stamped (what the admission's insert checks).
      expect(granted.kind === 'decided' && granted.budgets.map((b) => b.generation)).toEqual(['7', '7']);
      expect(await admit('res_2', 'r1')).toEqual({ kind: 'duplicate', reservationId: 'res_1' });
      expect(await counters.read(budgets[0])).toEqual({ committed: 0n, held: 1000n });
      expect(await counters.settle(orgId, budgets.map((w) => ({ window: w, reservationId: 'res_1' })), budgets.map((w) => ({ window: w, sum: 700n, records: () => [{ recordId: 'rec_1', amount: 700n }] })))).toBe(2);
      expect(await counters.read(budgets[0])).toEqual({ committed: 700n, held: 0n });
      expect(await counters.read(budgets[1])).toEqual({ committed: 700n, held: 0n });
    }
  });
});

import { Client } from 'pg';
import { newId } from '../../src/common/ids';
import { Tenancy } from '../data/tenants';
import { HttpClient } from '../harness/http';
import { LoadResult, runLoad } from '../harness/load';
import { inParallel } from '../harness/parallel';
import { fmt, Section } from '../harness/report';

export interface BudgetSetup {
  budgets: number;
  keys: number;
  seconds: number;
  /** Keys the check load asks about: every application key with traffic, and keys without. */
  checkedKeys: string[];
}

export interface BudgetCheckMeasurement {
  budgets: number;
  connections: number;
  seconds: number;
  check: LoadResult;
  /** GET /health/live on the same server: what the framework alone costs. */
  live: LoadResult;
}

const THRESHOLDS = [{ pct: 80 }, { pct: 100, action: 'block' }];

/**
 * Stores `target` budgets: an org-owned and an operator-owned budget on every org and application
 * key, through the API (so their live state is in Redis, as in production; a third of the
 * application keys get a daily limit their traffic has already passed, so the check blocks
 * them), and two on each of as many more member keys (made through the API) as it takes, written
 * straight into the table: the API would take minutes for them, and the check reads none of them.
 */
export async function createBudgets(admin: HttpClient, pg: Client, tenancy: Tenancy, target: number, log: (line: string) => void): Promise<BudgetSetup> {
  const started = performance.now();
  const appKeys = tenancy.tenants.flatMap((t) => t.keys.map((k) => k.id));
  const puts: Array<{ path: string; body: Record<string, unknown> }> = [];
  for (const { orgId } of tenancy.tenants) {
    puts.push({ path: `org/${orgId}`, body: { period: 'monthly', limit_kind: 'cost', limit: 1_000_000, thresholds: THRESHOLDS, owner: 'org' } });
    puts.push({ path: `org/${orgId}`, body: { period: 'monthly', limit_kind: 'cost', limit: 5_000_000, thresholds: THRESHOLDS, owner: 'cluster' } });
  }
  appKeys.forEach((id, i) => {
    puts.push({ path: `apikey/${id}`, body: { period: 'daily', limit_kind: 'cost', limit: i % 3 === 0 ? 0.000001 : 100_000, thresholds: THRESHOLDS, owner: 'org' } });
    puts.push({ path: `apikey/${id}`, body: { period: 'weekly', limit_kind: 'tokens', limit: 1e12, thresholds: THRESHOLDS, owner: 'cluster' } });
  });
  await inParallel(puts, 8, (p) => admin.json('PUT', `/api/v1/llm/budgets/${p.path}`, p.body));

  const extra = Math.max(0, Math.ceil((target - puts.length) / 2));
  const extraKeys: Array<{ id: string; orgId: string }> = [];
  await inParallel(Array.from({ length: extra }, (_v, i) => i), 8, async (i) => {
    const orgId = tenancy.tenants[i % tenancy.tenants.length].orgId;
    const key = await admin.json<{ id: string }>('POST', '/api/v1/api-keys', { name: `service ${i + 1}`, role: 'member', org_id: orgId }, { expect: 201 });
    extraKeys.push({ id: key.id, orgId });
  });
  const rows = extraKeys.flatMap((k) => [
    [newId('bud'), k.id, k.orgId, 'org', 'monthly', 'cost', '1000'],
    [newId('bud'), k.id, k.orgId, 'cluster', 'weekly', 'tokens', '1000000000'],
  ]);
  const column = (i: number) => rows.map((r) => r[i]);
  await pg.query(
    `INSERT INTO budgets (id, scope, scope_id, org_id, owner, period, limit_kind, limit_value, thresholds)
     SELECT id, 'apikey', scope_id, org_id, owner, period, limit_kind, limit_value::numeric, $8::jsonb
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) AS b(id, scope_id, org_id, owner, period, limit_kind, limit_value)`,
    [...[0, 1, 2, 3, 4, 5, 6].map(column), JSON.stringify(THRESHOLDS.map((t) => ({ action: 'alert', ...t })))],
  );
  const seconds = (performance.now() - started) / 1000;
  const budgets = puts.length + rows.length;
  log(`  stored ${budgets} budgets (${puts.length} through the API) on ${appKeys.length} application and ${extra} more keys in ${seconds.toFixed(1)} s`);
  return { budgets, keys: extra + appKeys.length, seconds, checkedKeys: [...appKeys, ...extraKeys.slice(0, 950).map((k) => k.id)] };
}

/**
 * The gateway's pre-request check under closed-loop load, against GET /health/live on the same
 * server, `connections` connections each, after a short warm-up of both. Every answer must be
 * right: the blocked application keys are checked to be blocked first.
 */
export async function measureBudgetCheck(options: {
  baseUrl: string;
  ingestKey: string;
  setup: BudgetSetup;
  blockedKey: string;
  servicePid: number;
  connections: number;
  seconds: number;
  warmupSeconds: number;
}): Promise<BudgetCheckMeasurement> {
  const http = new HttpClient(options.baseUrl, options.ingestKey);
  const verdict = await http.json<{ allowed: boolean; blocked_by: unknown[] }>('POST', '/api/v1/llm/budgets/check', { api_key_id: options.blockedKey });
  http.close();
  if (verdict.allowed || verdict.blocked_by.length === 0) throw new Error(`the check let a key past its spent budget: ${JSON.stringify(verdict)}`);

  const headers = { authorization: `Bearer ${options.ingestKey}`, 'content-type': 'application/json' };
  const checks = options.setup.checkedKeys.map((id) => ({ method: 'POST', path: '/api/v1/llm/budgets/check', headers, body: JSON.stringify({ api_key_id: id }) }));
  const live = [{ method: 'GET', path: '/health/live' }];
  await runLoad(options.baseUrl, checks, options.connections, options.warmupSeconds);
  await runLoad(options.baseUrl, live, options.connections, options.warmupSeconds);
  const check = await runLoad(options.baseUrl, checks, options.connections, options.seconds, options.servicePid);
  const floor = await runLoad(options.baseUrl, live, options.connections, options.seconds, options.servicePid);
  for (const [name, result] of [['check', check], ['health', floor]] as const) {
    if (result.errors > 0) throw new Error(`${name} load: ${result.errors} failed requests`);
  }
  return { budgets: options.setup.budgets, connections: options.connections, seconds: options.seconds, check, live: floor };
}

/** Part 3 of the report: the check's throughput and tail latency against the framework's floor. */
export function budgetCheckSection(m: BudgetCheckMeasurement): Section {
  const share = m.check.requestsPerSecond / m.live.requestsPerSecond;
  const row = (name: string, r: LoadResult, ratio: string) => [
    name,
    fmt.count(r.requests),
    fmt.count(r.requestsPerSecond),
    `${fmt.ms(r.latency.p50)} ms`,
    `${fmt.ms(r.latency.p99)} ms`,
    ratio,
    r.serviceCpuPerRequestUs === undefined ? 'n/a' : `${r.serviceCpuPerRequestUs.toFixed(0)} µs`,
    r.serviceCpuUse === undefined ? 'n/a' : r.serviceCpuUse.toFixed(2),
  ];
  return {
    id: 'budget-check',
    title: '3. Budget check',
    method:
      `autocannon in its own process, ${m.connections} keep-alive connections for ${m.seconds} s each after a warm-up, ${fmt.count(m.budgets)} budgets stored; the checks cycle through ` +
      'the application keys (a third of them blocked) and keys with budgets and no traffic. Floor: GET /health/live on the same server. ' +
      'The service\'s CPU time per request (from /proc) is steadier than req/s on a shared machine; a CPU use near 1 means the service was the bottleneck.',
    tables: [
      {
        header: ['endpoint', 'requests', 'req/s', 'p50', 'p99', '÷ /health/live', 'service CPU per request', 'service CPU use'],
        rows: [row('POST /api/v1/llm/budgets/check', m.check, fmt.ratio(share)), row('GET /health/live (floor)', m.live, '1×')],
      },
    ],
    goals: [
      { goal: 'check p99 < 5 ms', measured: `${fmt.ms(m.check.latency.p99)} ms`, pass: m.check.latency.p99 < 5 },
      { goal: 'check ≥ ½ of the floor\'s throughput', measured: fmt.ratio(share), pass: share >= 0.5 },
    ],
    data: m,
  };
}

import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { newId } from '../../src/common/ids';
import { HttpClient } from '../harness/http';
import { LoadRequest, LoadResult, runLoad } from '../harness/load';
import { fmt, Section } from '../harness/report';

const SPREAD_BUDGETS = 1000;
const TOKENS_PER_RESERVATION = 100n; // input 50 + output 50

export interface ReservationScenario {
  name: string;
  budgets: number;
  load: LoadResult;
  /** Distinct reservations stored (the rest of the requests, if any, were replays of a request id). */
  stored: number;
  granted: number;
  /** Σ over budgets of max(0, live holds − block limit), tokens: must be 0. */
  overshoot: bigint;
}

export interface ReservationsMeasurement {
  connections: number;
  seconds: number;
  hot: ReservationScenario;
  spread: ReservationScenario;
  live: LoadResult;
}

/**
 * Part 6: reservations under closed-loop load, on one hot budget and spread over 1,000 budgets,
 * against GET /health/live on the same server. Every budget blocks at a limit the run reaches (a
 * share of the requests is denied), and the overshoot (live holds above the block limit, read
 * from PostgreSQL afterwards) is measured.
 */
export async function measureReservations(options: {
  baseUrl: string;
  admin: HttpClient;
  pg: Client;
  ingestKey: string;
  servicePid: number;
  connections: number;
  seconds: number;
  warmupSeconds: number;
  log: (line: string) => void;
}): Promise<ReservationsMeasurement> {
  const { admin, pg } = options;
  const org = await admin.json<{ id: string }>('POST', '/api/v1/orgs', { name: 'bench reservations' }, { expect: 201 });
  const hotKey = await admin.json<{ id: string }>('POST', '/api/v1/api-keys', { name: 'hot', role: 'member', org_id: org.id }, { expect: 201 });
  // 1,000 keys with a budget each, straight into the tables (the API would take a while).
  const spreadKeys = Array.from({ length: SPREAD_BUDGETS }, () => newId('key'));
  await pg.query(
    `INSERT INTO api_keys (id, org_id, name, role, secret_hash, secret_prefix) SELECT id, $2, 'spread', 'member', decode(md5(id), 'hex'), 'mk-bench' FROM unnest($1::varchar[]) id`,
    [spreadKeys, org.id],
  );
  const put = (keyId: string, limit: bigint) =>
    admin.json<{ id: string }>('PUT', `/api/v1/llm/budgets/apikey/${keyId}`, { period: 'daily', limit_kind: 'tokens', limit: Number(limit), thresholds: [{ pct: 100, action: 'block' }] });
  const hotBudget = await put(hotKey.id, 10n ** 12n);
  await pg.query(
    `INSERT INTO budgets (id, scope, scope_id, org_id, owner, period, limit_kind, limit_value, thresholds)
     SELECT 'bud_' || substr(md5(k), 1, 24), 'apikey', k, $2, 'org', 'daily', 'tokens', 1000000000000, '[{"pct": 100, "action": "block"}]'::jsonb
     FROM unnest($1::varchar[]) k`,
    [spreadKeys, org.id],
  );

  const headers = { authorization: `Bearer ${options.ingestKey}`, 'content-type': 'application/json' };
  // Every request id unique (autocannon replaces [<id>] per request): a repeated one would be a cheaper replay.
  const bodies = (prefix: string, keys: string[]): LoadRequest[] =>
    keys.map((key) => ({
      method: 'POST',
      path: '/api/v1/llm/budgets/reservations',
      headers,
      body: JSON.stringify({ request_id: `${prefix}-[<id>]`, api_key_id: key, model: 'bench-model', input_tokens: 50, max_output_tokens: 50, min_output_tokens: 50, ttl_seconds: 3600 }),
    }));
  const run = randomBytes(3).toString('hex');
  const live = [{ method: 'GET', path: '/health/live' }];

  // Warm-up: one reservation on every key loads every budget's counters (a first admission in a
  // window rebuilds them from PostgreSQL; autocannon's connections each walk the request list from
  // its start, so a timed run alone would leave most keys cold), then a timed run tells the rate,
  // which sizes the limits so that each measured run reaches them.
  const allKeys = [hotKey.id, ...spreadKeys];
  /** One reservation on every key, `outputTokens` asked for (and needed at least). */
  const everyKey = async (prefix: string, outputTokens: number) => {
    const warmer = new HttpClient(options.baseUrl, options.ingestKey, options.connections);
    await Promise.all(
      Array.from({ length: options.connections }, async (_c, lane) => {
        for (let i = lane; i < allKeys.length; i += options.connections) {
          const body = { request_id: `${prefix}-${run}-${i}`, api_key_id: allKeys[i], model: 'bench-model', input_tokens: 50, max_output_tokens: outputTokens, min_output_tokens: outputTokens, ttl_seconds: 3600 };
          await warmer.json('POST', '/api/v1/llm/budgets/reservations', body);
        }
      }),
    );
    warmer.close();
  };
  await everyKey('cold', 50);
  const warm = await runLoad(options.baseUrl, bodies(`warm-${run}`, [hotKey.id, ...spreadKeys]), options.connections, Math.max(options.warmupSeconds, 2), undefined, true);
  await runLoad(options.baseUrl, live, options.connections, options.warmupSeconds);
  const expected = BigInt(Math.ceil(warm.requestsPerSecond * options.seconds));
  const heldNow = new Map<string, bigint>(
    (
      await pg.query(
        // The most any one window holds (a hold made just before a reset is held in two windows).
        `SELECT budget_id, MAX(held)::text AS held FROM (
           SELECT h.budget_id, SUM(h.amount::bigint) AS held FROM reservations r, jsonb_to_recordset(r.holds) AS h(budget_id varchar, window_start bigint, amount text)
           WHERE r.org_id = $1 AND r.status = 'held' GROUP BY h.budget_id, h.window_start) w GROUP BY budget_id`,
        [org.id],
      )
    ).rows.map((r: { budget_id: string; held: string }) => [r.budget_id, BigInt(r.held)]),
  );
  // Half of the measured requests fit, on the hot budget and on each spread budget.
  const hotLimit = (heldNow.get(hotBudget.id) ?? 0n) + (expected / 2n) * TOKENS_PER_RESERVATION;
  await put(hotKey.id, hotLimit);
  const perSpread = (expected / BigInt(SPREAD_BUDGETS) / 2n + 1n) * TOKENS_PER_RESERVATION;
  const spreadBudgets: Array<{ id: string }> = (await pg.query(`SELECT id FROM budgets WHERE org_id = $1 AND scope_id <> $2`, [org.id, hotKey.id])).rows;
  const spreadLimits = new Map(spreadBudgets.map((b) => [b.id, (heldNow.get(b.id) ?? 0n) + perSpread]));
  await pg.query(`UPDATE budgets SET limit_value = l.v::numeric FROM unnest($1::varchar[], $2::text[]) AS l(id, v) WHERE budgets.id = l.id`, [
    [...spreadLimits.keys()],
    [...spreadLimits.values()].map(String),
  ]);
  // Each process keeps the budgets of a key it admitted (checked at every insert): the first
  // admission of a key after its budget changed decides twice (the first decision is not stored).
  // A pass of requests too large to fit (denied, holding nothing) takes that once-per-change cost
  // out of the measured runs, as the first pass took the counters' loading out.
  await everyKey('changed', 1_000_000_000);
  options.log(`  warm-up ${fmt.count(warm.requestsPerSecond)} req/s; hot limit ${hotLimit} tokens, ${perSpread} more tokens on each of ${SPREAD_BUDGETS} budgets`);

  const hotLoad = await runLoad(options.baseUrl, bodies(`hot-${run}`, [hotKey.id]), options.connections, options.seconds, options.servicePid, true);
  const spreadLoad = await runLoad(options.baseUrl, bodies(`spread-${run}`, spreadKeys), options.connections, options.seconds, options.servicePid, true);
  const floor = await runLoad(options.baseUrl, live, options.connections, options.seconds, options.servicePid);
  for (const [name, result] of [['hot', hotLoad], ['spread', spreadLoad], ['health', floor]] as const) {
    if (result.errors > 0) throw new Error(`${name} load: ${result.errors} failed requests`);
  }

  const scenario = async (name: string, prefix: string, load: LoadResult, budgetLimits: Map<string, bigint>): Promise<ReservationScenario> => {
    const counts = await pg.query(
      `SELECT COUNT(*)::int AS stored, COUNT(*) FILTER (WHERE status <> 'denied')::int AS granted FROM reservations WHERE org_id = $1 AND request_id LIKE $2`,
      [org.id, `${prefix}-%`],
    );
    // Per budget and window: a hold granted just before a reset is held in the next window too.
    const holds = await pg.query(
      `SELECT h.budget_id, SUM(h.amount::bigint)::text AS held
       FROM reservations r, jsonb_to_recordset(r.holds) AS h(budget_id varchar, window_start bigint, amount text)
       WHERE r.org_id = $1 AND r.status = 'held' GROUP BY h.budget_id, h.window_start`,
      [org.id],
    );
    let overshoot = 0n;
    for (const row of holds.rows as Array<{ budget_id: string; held: string }>) {
      const limit = budgetLimits.get(row.budget_id);
      if (limit !== undefined && BigInt(row.held) > limit) overshoot += BigInt(row.held) - limit;
    }
    return { name, budgets: budgetLimits.size, load, stored: counts.rows[0].stored, granted: counts.rows[0].granted, overshoot };
  };
  const hot = await scenario('one hot budget', `hot-${run}`, hotLoad, new Map([[hotBudget.id, hotLimit]]));
  const spread = await scenario(`${SPREAD_BUDGETS} budgets`, `spread-${run}`, spreadLoad, spreadLimits);
  return { connections: options.connections, seconds: options.seconds, hot, spread, live: floor };
}

/** Part 6 of the report. */
export function reservationsSection(m: ReservationsMeasurement): Section {
  const row = (name: string, r: LoadResult, extra: string[]) => [
    name,
    fmt.count(r.requests),
    fmt.count(r.requestsPerSecond),
    `${fmt.ms(r.latency.p50)} ms`,
    `${fmt.ms(r.latency.p99)} ms`,
    fmt.ratio(r.requestsPerSecond / m.live.requestsPerSecond),
    r.serviceCpuPerRequestUs === undefined ? 'n/a' : `${r.serviceCpuPerRequestUs.toFixed(0)} µs`,
    ...extra,
  ];
  const scenarioRow = (s: ReservationScenario) =>
    row(`reserve, ${s.name}`, s.load, [fmt.count(s.stored), fmt.count(s.granted), s.overshoot.toString()]);
  const worstP99 = Math.max(m.hot.load.latency.p99, m.spread.load.latency.p99);
  const worstShare = Math.min(m.hot.load.requestsPerSecond, m.spread.load.requestsPerSecond) / m.live.requestsPerSecond;
  return {
    id: 'reservations',
    title: '6. Reservations',
    method:
      `autocannon in its own process, ${m.connections} keep-alive connections for ${m.seconds} s each after a warm-up: POST /api/v1/llm/budgets/reservations (input 50, ` +
      'output 50, every request id unique) on one hot tokens budget, then spread over 1,000 budgets of 1,000 keys; each budget blocks at a limit the run reaches, so part of ' +
      'the requests are denied. Overshoot: Σ over budgets of (live holds − block limit) when positive, read from PostgreSQL afterwards; it must be 0. Floor: GET /health/live on the same server.',
    tables: [
      {
        header: ['endpoint', 'requests', 'req/s', 'p50', 'p99', '÷ /health/live', 'service CPU per request', 'stored', 'granted', 'overshoot (tokens)'],
        rows: [scenarioRow(m.hot), scenarioRow(m.spread), row('GET /health/live (floor)', m.live, ['', '', ''])],
      },
    ],
    goals: [
      { goal: 'reservation p99 < 5 ms', measured: `${fmt.ms(worstP99)} ms`, pass: worstP99 < 5 },
      { goal: 'reservations ≥ ½ of the floor\'s throughput', measured: fmt.ratio(worstShare), pass: worstShare >= 0.5 },
      { goal: 'overshoot 0', measured: `${(m.hot.overshoot + m.spread.overshoot).toString()} tokens`, pass: m.hot.overshoot + m.spread.overshoot === 0n },
    ],
    data: { ...m, hot: { ...m.hot, overshoot: m.hot.overshoot.toString() }, spread: { ...m.spread, overshoot: m.spread.overshoot.toString() } },
  };
}

import { Client } from 'pg';
import { Principal } from '../../src/auth/principal';
import { Role } from '../../src/auth/role';
import { CompletionsGroupBy } from '../../src/usage/dto/completions.dto';
import { BucketWidth, WIDTH_SECONDS } from '../../src/usage/time-buckets';
import { buildAggregateSql } from '../../src/usage/usage-aggregator';
import { COMPLETION_MEASURES } from '../../src/usage/usage-reports.service';
import { usageFilter } from '../../src/usage/usage-scope';
import { HttpClient } from '../harness/http';
import { fmt, Section } from '../harness/report';
import { LatencySummary, sampleInRounds, SamplingPlan, summarize } from '../harness/stats';
import { foldTail, unfoldTail } from './pending-tail';

/** The dashboard queries of the issue: one org's usage, read by its org admin. */
export interface QueryCase {
  name: string;
  width: BucketWidth;
  buckets: number;
  groupBy: CompletionsGroupBy[];
}

export const QUERY_CASES: QueryCase[] = [
  { name: '31 daily buckets by model', width: '1d', buckets: 31, groupBy: ['model'] },
  { name: '168 hourly buckets by api_key_id, user_id', width: '1h', buckets: 168, groupBy: ['api_key_id', 'user_id'] },
  { name: '1,440 one-minute buckets', width: '1m', buckets: 1440, groupBy: [] },
];

export interface QueryMeasurement {
  query: string;
  records: number;
  /** Results (groups × buckets) in the answer, and the size of the HTTP body. */
  results: number;
  responseBytes: number;
  /** GET /api/v1/llm/usage/completions over keep-alive HTTP. */
  http: LatencySummary;
  /** The service's own aggregate SQL through the pg driver (no HTTP, no NestJS): the floor. */
  floor: LatencySummary;
  /** The same answer from a plain GROUP BY over the raw records: the naive design. */
  naive: LatencySummary;
}

export interface QueryPlans {
  fast: SamplingPlan;
  naive: SamplingPlan;
}

type Totals = Record<string, number>;

/**
 * Measures each query three ways, after checking that the HTTP answer equals the naive GROUP BY's
 * (a benchmark of a wrong answer would be worthless). `end` is a UTC midnight: every range is
 * whole buckets ending there.
 */
export async function measureUsageQueries(options: {
  http: HttpClient;
  pg: Client;
  orgId: string;
  orgAdminKeyId: string;
  end: number;
  records: number;
  plans: QueryPlans;
  /** Also measure the daily query with this much of the org's latest usage pending in the rollup journal. */
  pendingTailSeconds?: number;
  log: (line: string) => void;
}): Promise<QueryMeasurement[]> {
  const measurements: QueryMeasurement[] = [];
  for (const c of QUERY_CASES) measurements.push(await measureCase(options, c, c.name));
  if (options.pendingTailSeconds) {
    const rows = await unfoldTail(options.pg, options.orgId, options.end - options.pendingTailSeconds, options.end);
    options.log(`  (moved the last ${options.pendingTailSeconds / 3600} h of the org's usage back into the journal: ${rows} pending rows)`);
    try {
      measurements.push(await measureCase(options, QUERY_CASES[0], `${QUERY_CASES[0].name}, ${options.pendingTailSeconds / 3600} h pending`));
    } finally {
      await foldTail(options.pg);
    }
  }
  return measurements;
}

async function measureCase(options: Parameters<typeof measureUsageQueries>[0], c: QueryCase, name: string): Promise<QueryMeasurement> {
  const principal: Principal = { apiKeyId: options.orgAdminKeyId, orgId: options.orgId, role: Role.OrgAdmin, teamId: null, onBehalfOf: null };
  const width = WIDTH_SECONDS[c.width];
  const from = options.end - c.buckets * width;
  const params = new URLSearchParams({ start_time: String(from), end_time: String(options.end), bucket_width: c.width, limit: String(c.buckets) });
  for (const field of c.groupBy) params.append('group_by', field);
  const path = `/api/v1/llm/usage/completions?${params}`;
  const floor = buildAggregateSql({
    from,
    to: options.end,
    width: c.width,
    dimensions: c.groupBy,
    measures: COMPLETION_MEASURES,
    filter: usageFilter(principal, {}),
  })!;
  const naive = naiveSql(c.groupBy, width);
  const naiveParams = [options.orgId, new Date(from * 1000).toISOString(), new Date(options.end * 1000).toISOString()];

  const first = await options.http.send('GET', path);
  if (first.status !== 200) throw new Error(`GET ${path}: ${first.status} ${first.text.slice(0, 300)}`);
  const answer = fromHttp(JSON.parse(first.text), c.groupBy);
  const expected = fromRows((await options.pg.query(naive, naiveParams)).rows, c.groupBy);
  assertSameTotals(c.name, answer, expected);

  const getOk = async () => {
    const res = await options.http.send('GET', path);
    if (res.status !== 200) throw new Error(`GET ${path}: ${res.status}`);
  };
  const [http, floorMs] = await sampleInRounds([
    { run: getOk, plan: options.plans.fast },
    { run: () => options.pg.query(floor.sql, floor.params), plan: options.plans.fast },
  ]);
  const [naiveMs] = await sampleInRounds([{ run: () => options.pg.query(naive, naiveParams), plan: options.plans.naive }]);
  const m: QueryMeasurement = {
    query: name,
    records: options.records,
    results: answer.size,
    responseBytes: Buffer.byteLength(first.text),
    http: summarize(http),
    floor: summarize(floorMs),
    naive: summarize(naiveMs),
  };
  options.log(
    `  ${name}: HTTP p50 ${m.http.p50.toFixed(1)} ms (n=${m.http.n}), floor ${m.floor.p50.toFixed(1)} ms, ` +
      `raw GROUP BY ${m.naive.p50.toFixed(1)} ms (n=${m.naive.n}); ${m.results} results`,
  );
  return m;
}

/** The naive design: aggregate the raw records on every request. */
function naiveSql(groupBy: CompletionsGroupBy[], width: number): string {
  const keys = [`(floor(extract(epoch FROM created_at) / ${width}) * ${width})::bigint AS bucket`, ...groupBy];
  const positions = keys.map((_k, i) => i + 1).join(', ');
  return `SELECT ${keys.join(', ')}, SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens,
      SUM(input_cached_tokens) AS input_cached_tokens, count(*) AS num_model_requests,
      SUM(input_audio_tokens) AS input_audio_tokens, SUM(output_audio_tokens) AS output_audio_tokens
    FROM completion_records WHERE org_id = $1 AND created_at >= $2 AND created_at < $3
    GROUP BY ${positions} ORDER BY ${positions}`;
}

const MEASURE_FIELDS = ['input_tokens', 'output_tokens', 'input_cached_tokens', 'num_model_requests', 'input_audio_tokens', 'output_audio_tokens'];

function fromHttp(page: { data: Array<{ start_time: number; results: Array<Record<string, unknown>> }> }, groupBy: string[]): Map<string, Totals> {
  const totals = new Map<string, Totals>();
  for (const bucket of page.data) {
    for (const result of bucket.results) {
      totals.set([bucket.start_time, ...groupBy.map((g) => result[g])].join('|'), Object.fromEntries(MEASURE_FIELDS.map((f) => [f, Number(result[f])])));
    }
  }
  return totals;
}

function fromRows(rows: Array<Record<string, unknown>>, groupBy: string[]): Map<string, Totals> {
  return new Map(rows.map((row) => [[row.bucket, ...groupBy.map((g) => row[g])].join('|'), Object.fromEntries(MEASURE_FIELDS.map((f) => [f, Number(row[f])]))]));
}

function assertSameTotals(name: string, actual: Map<string, Totals>, expected: Map<string, Totals>): void {
  const problems: string[] = [];
  for (const [key, totals] of expected) {
    const got = actual.get(key);
    if (!got || MEASURE_FIELDS.some((f) => got[f] !== totals[f])) problems.push(`${key}: expected ${JSON.stringify(totals)}, got ${JSON.stringify(got)}`);
  }
  for (const key of actual.keys()) if (!expected.has(key)) problems.push(`${key}: not in the raw records`);
  if (problems.length > 0) throw new Error(`${name}: the service's answer differs from the raw GROUP BY (${problems.length} groups), e.g. ${problems.slice(0, 3).join('; ')}`);
  if (expected.size === 0) throw new Error(`${name}: no data in range; the benchmark would measure nothing`);
}

/** Part 1 of the report: every query at every size, its floor and its naive baseline; the goals on the daily query at the largest size. */
export function usageQuerySection(measurements: QueryMeasurement[]): Section {
  const sizes = [...new Set(measurements.map((m) => m.records))].sort((a, b) => a - b);
  const largest = sizes[sizes.length - 1];
  const at = (query: string, records: number) => measurements.find((m) => m.query === query && m.records === records)!;
  const daily = at(QUERY_CASES[0].name, largest);
  const rows = measurements.map((m) => [
    m.query,
    fmt.count(m.records),
    fmt.ms(m.http.p50),
    fmt.ms(m.http.p99),
    fmt.ms(m.floor.p50),
    fmt.ratio(m.http.p50 / m.floor.p50),
    fmt.ms(m.naive.p50),
    fmt.ratio(m.naive.p50 / m.http.p50),
    fmt.count(m.results),
    `${(m.responseBytes / 1024).toFixed(0)} KiB`,
    `${m.http.n}/${m.floor.n}/${m.naive.n}`,
  ]);
  const growth = QUERY_CASES.filter((c) => measurements.some((m) => m.query === c.name && m.records === sizes[0])).map((c) => {
    const small = at(c.name, sizes[0]);
    const large = at(c.name, largest);
    return [c.name, fmt.ms(small.http.p50), fmt.ms(large.http.p50), fmt.ratio(large.http.p50 / small.http.p50), fmt.ms(small.naive.p50), fmt.ms(large.naive.p50), fmt.ratio(large.naive.p50 / small.naive.p50)];
  });
  const tail = measurements.find((m) => m.query.startsWith(`${QUERY_CASES[0].name},`) && m.records === largest);
  const speedup = daily.naive.p50 / daily.http.p50;
  const overFloor = daily.http.p50 / daily.floor.p50;
  return {
    id: 'usage-query',
    title: '1. Usage query',
    method:
      'GET /api/v1/llm/usage/completions as the org admin of the largest org (40% of the traffic), whole buckets ending at the last UTC midnight, one keep-alive connection, ' +
      'p50/p99 in ms. Floor: the SQL the service builds (`buildAggregateSql`) run through the `pg` driver, interleaved with the HTTP runs. Naive: a plain GROUP BY over the raw ' +
      'records for the same answer (checked equal to the HTTP answer before timing). Runs: HTTP/floor/raw.',
    tables: [
      {
        header: ['query', 'records', 'HTTP p50', 'HTTP p99', 'floor p50', 'HTTP ÷ floor', 'raw GROUP BY p50', 'raw ÷ HTTP', 'results', 'body', 'runs'],
        rows,
      },
      ...(sizes.length > 1
        ? [{ header: ['query', `HTTP p50 @ ${fmt.count(sizes[0])}`, `@ ${fmt.count(largest)}`, 'growth', `raw p50 @ ${fmt.count(sizes[0])}`, `@ ${fmt.count(largest)}`, 'growth'], rows: growth }]
        : []),
    ],
    goals: [
      { goal: `daily query p50 at ${fmt.count(largest)} records < 20 ms`, measured: `${fmt.ms(daily.http.p50)} ms`, pass: daily.http.p50 < 20 },
      { goal: 'daily query ≥ 50× faster than the raw GROUP BY', measured: fmt.ratio(speedup), pass: speedup >= 50 },
      { goal: 'daily query within 2× of the floor', measured: fmt.ratio(overFloor), pass: overFloor <= 2 },
      ...(tail
        ? [
            {
              goal: 'daily query with a pending tail within 2× of the floor (nothing pending)',
              measured: `${fmt.ratio(tail.http.p50 / daily.floor.p50)} (${fmt.ms(tail.http.p50)} ms; its own floor ${fmt.ms(tail.floor.p50)} ms)`,
              pass: tail.http.p50 / daily.floor.p50 <= 2,
            },
          ]
        : []),
    ],
    data: measurements,
  };
}

import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import { forEachLimited } from '../common/for-each-limited';
import { PENDING_TABLES } from './pending-deltas';
import { buildAggregateSql, minuteRollupFrom } from './usage-aggregator';
import { rollup } from './rollups';
import { DAY } from './time-buckets';

export interface SpendScope {
  orgId: string;
  /** Narrows to one key of the org. */
  apiKeyId?: string;
}

/** What a budget's spend is grouped by: the key, the key's team, or the end user of the records. */
export type SpendDimension = 'api_key_id' | 'team_id' | 'user_id';

export interface KeyedSpendQuery {
  orgId: string;
  from: Date;
  to: Date;
  /** Only these keys; omitted: every key of the org. */
  apiKeyIds?: string[];
}

export interface KeyedSpend {
  total: Spend;
  byKey: Map<string, Spend>;
}

export interface Spend {
  costNano: bigint;
  /** input_tokens + output_tokens. */
  tokens: bigint;
}

/**
 * Spend of an org or key over a budget window, for budgets, always with the pending deltas
 * (journal and held rows). Windows of whole UTC days read the daily per-key rollup only; any other window (a local
 * day in a time zone) is split by {@link buildAggregateSql}: whole UTC days from the daily rollup,
 * whole hours from the hourly per-key rollup, whole minutes from the minute rollup and only
 * sub-minute edges from raw records, so it is exact for every offset (+05:30 and +05:45 read
 * minute rows at the edges).
 */
@Injectable()
export class UsageSpendService {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** Sum over [from, to) (whole seconds), of the org or of one of its keys. */
  async spend(scope: SpendScope, from: Date, to: Date): Promise<Spend> {
    const apiKeyIds = scope.apiKeyId === undefined ? undefined : [scope.apiKeyId];
    return (await this.spendByKeys([{ orgId: scope.orgId, from, to, apiKeyIds }]))[0].total;
  }

  /**
   * The spend of an org over [from, to) in all and per key (of the keys in `apiKeyIds` only, when
   * given), for each of many (org, window) pairs, in order. Bounds are whole seconds. Windows of
   * whole UTC days read the daily rollup alone, together: one statement for up to
   * {@link SPEND_BATCH} of them (an ingest touching five orgs whose key budgets have three
   * periods makes one round trip, not fifteen); any other window (a budget in another time zone)
   * is read on its own, at most `concurrency` at once.
   */
  async spendByKeys(queries: KeyedSpendQuery[], concurrency = 1): Promise<KeyedSpend[]> {
    const results: KeyedSpend[] = queries.map(() => ({ total: { costNano: 0n, tokens: 0n }, byKey: new Map() }));
    const daily: number[] = [];
    const ragged: number[] = [];
    queries.forEach(({ from, to }, i) => {
      for (const [name, date] of [
        ['from', from],
        ['to', to],
      ] as const) {
        if (date.getTime() % 1000 !== 0) throw new RangeError(`spend(): ${name} must be a whole second (got ${date.toISOString()})`);
      }
      (from.getTime() % (DAY * 1000) === 0 && to.getTime() % (DAY * 1000) === 0 ? daily : ragged).push(i);
    });
    for (let i = 0; i < daily.length; i += SPEND_BATCH) {
      const chunk = daily.slice(i, i + SPEND_BATCH);
      const { sql, params } = spendByKeysSql(chunk.map((q) => queries[q]));
      const rows: Array<{ g: number; api_key_id: string; cost_nano: string; tokens: string }> = await this.dataSource.query(sql, params);
      for (const row of rows) {
        const result = results[chunk[row.g]];
        const spend = { costNano: BigInt(row.cost_nano), tokens: BigInt(row.tokens) };
        result.byKey.set(row.api_key_id, spend);
        result.total.costNano += spend.costNano;
        result.total.tokens += spend.tokens;
      }
    }
    await forEachLimited(ragged, concurrency, async (i) => {
      const { orgId, from, to, apiKeyIds } = queries[i];
      const { total, byValue } = await this.spendByDimension(orgId, from, to, 'api_key_id', apiKeyIds);
      results[i] = { total, byKey: byValue };
    });
    return results;
  }

  /**
   * An org's spend over [from, to) (any whole seconds), in all and per value of `dimension` (of
   * the values in `values` only, when given), in one read: the API key, the key's team (records
   * carry it), or the end user (read from the per-user rollups, which the per-key ones lack).
   */
  async spendByDimension(
    orgId: string,
    from: Date,
    to: Date,
    dimension: SpendDimension,
    values?: string[],
  ): Promise<{ total: Spend; byValue: Map<string, Spend> }> {
    const total: Spend = { costNano: 0n, tokens: 0n };
    const byValue = new Map<string, Spend>();
    const built = buildAggregateSql({
      from: Math.floor(from.getTime() / 1000),
      to: Math.floor(to.getTime() / 1000),
      dimensions: [dimension],
      measures: ['cost_nano', 'input_tokens', 'output_tokens'],
      filter: { orgId, anyOf: values === undefined ? [] : [{ dimension, values }] },
      // Minutes past the minute rollup's retention (a late record's window, or a monthly window when
      // MINUTE_ROLLUP_RETENTION_DAYS is shorter) are read from the raw records, as reports read them.
      minuteFrom: minuteRollupFrom(this.config),
    });
    if (!built) return { total, byValue };
    const rows: Array<Record<string, string | null>> = await this.dataSource.query(built.sql, built.params);
    for (const row of rows) {
      if (row.cost_nano === null) continue;
      const spend = { costNano: BigInt(row.cost_nano), tokens: BigInt(row.input_tokens ?? '0') + BigInt(row.output_tokens ?? '0') };
      byValue.set(String(row[dimension]), spend);
      total.costNano += spend.costNano;
      total.tokens += spend.tokens;
    }
    return { total, byValue };
  }
}

/** (org, window) pairs of whole UTC days read by one statement at most. */
export const SPEND_BATCH = 500;

/**
 * The spend statement of many (org, window) pairs of whole UTC days: the daily per-key rollup
 * plus the pending deltas (journal and held rows), in one statement (one snapshot), so a record
 * counts once its ingest returned, folded or not. Each row is one pair (`g`, its index in `queries`) and key.
 * Each read is a LATERAL subquery, so it runs once per pair (or key) on an index, as a statement
 * of its own would; a plain join could be planned as one scan of the whole rollup, hashed, which
 * grows with the table rather than with the pairs. The rollup is read per key of a pair with
 * `apiKeyIds` (its (org, key, day) index), or for every key of the org in the window (the (org,
 * day) prefix of its primary key); the journal and the held rows, which have only an (org, time)
 * index, once per pair each, their keys filtered after.
 */
export function spendByKeysSql(queries: KeyedSpendQuery[]): { sql: string; params: unknown[] } {
  const pairs = { g: [] as number[], org: [] as string[], from: [] as string[], to: [] as string[], every: [] as boolean[] };
  const keys = { g: [] as number[], key: [] as string[] };
  queries.forEach(({ orgId, from, to, apiKeyIds }, g) => {
    pairs.g.push(g);
    pairs.org.push(orgId);
    pairs.from.push(from.toISOString());
    pairs.to.push(to.toISOString());
    pairs.every.push(apiKeyIds === undefined);
    for (const key of new Set(apiKeyIds)) {
      keys.g.push(g);
      keys.key.push(key);
    }
  });
  // Each SUM is numeric; input_tokens + output_tokens of one row is bigint and overflows when each
  // is near 2^63 (one such row failed the read for every org of the statement).
  const sum = 'SUM(cost_nano) AS cost_nano, SUM(input_tokens) + SUM(output_tokens) AS tokens';
  const window = 'r.org_id = w.org_id AND r.bucket_start >= w.s AND r.bucket_start < w.e';
  const rollupTable = rollup('dayByKey').table;
  const pending = PENDING_TABLES.map(
    (table) => `
       UNION ALL
       SELECT w.g, x.* FROM w CROSS JOIN LATERAL (
         SELECT api_key_id, ${sum} FROM ${table} r WHERE ${window} GROUP BY api_key_id) x
       WHERE w.every OR (w.g, x.api_key_id) IN (SELECT g, api_key_id FROM k)`,
  ).join('');
  const sql = `WITH w AS (SELECT * FROM unnest($1::int[], $2::varchar[], $3::timestamptz[], $4::timestamptz[], $5::boolean[]) AS w(g, org_id, s, e, every)),
       k AS (SELECT * FROM unnest($6::int[], $7::varchar[]) AS k(g, api_key_id))
     SELECT g, api_key_id, SUM(cost_nano)::text AS cost_nano, SUM(tokens)::text AS tokens FROM (
       SELECT w.g, x.* FROM w CROSS JOIN LATERAL (
         SELECT api_key_id, ${sum} FROM ${rollupTable} r WHERE ${window} GROUP BY api_key_id) x
       WHERE w.every
       UNION ALL
       SELECT w.g, k.api_key_id, x.cost_nano, x.tokens FROM w JOIN k ON k.g = w.g CROSS JOIN LATERAL (
         SELECT ${sum} FROM ${rollupTable} r WHERE ${window} AND r.api_key_id = k.api_key_id) x
       WHERE x.cost_nano IS NOT NULL
${pending}
     ) u GROUP BY g, api_key_id`;
  return { sql, params: [pairs.g, pairs.org, pairs.from, pairs.to, pairs.every, keys.g, keys.key] };
}

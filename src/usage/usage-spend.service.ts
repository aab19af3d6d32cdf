import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { JOURNAL_TABLE } from './rollup-journal';
import { buildAggregateSql } from './usage-aggregator';
import { rollup } from './rollups';
import { DAY } from './time-buckets';

export interface SpendScope {
  orgId: string;
  /** Narrows to one key of the org. */
  apiKeyId?: string;
}

/** What a budget's spend is grouped by: the key, the key's team, or the end user of the records. */
export type SpendDimension = 'api_key_id' | 'team_id' | 'user_id';

export interface Spend {
  costNano: bigint;
  /** input_tokens + output_tokens. */
  tokens: bigint;
}

/**
 * Spend of an org or key over a budget window, for budgets, always with the journal's pending
 * deltas. Windows of whole UTC days read the daily per-key rollup only; any other window (a local
 * day in a time zone) is split by {@link buildAggregateSql}: whole UTC days from the daily rollup,
 * whole hours from the hourly per-key rollup, whole minutes from the minute rollup and only
 * sub-minute edges from raw records, so it is exact for every offset (+05:30 and +05:45 read
 * minute rows at the edges).
 */
@Injectable()
export class UsageSpendService {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  /** Sum over [from, to) (whole seconds). */
  async spend(scope: SpendScope, from: Date, to: Date): Promise<Spend> {
    return (await this.spendByKey(scope.orgId, from, to, scope.apiKeyId === undefined ? undefined : [scope.apiKeyId])).total;
  }

  /**
   * An org's spend over [from, to), in all and per key, in one read (of the keys in `apiKeyIds`
   * only, when given). Bounds are whole seconds; UTC midnights read the daily rollup alone.
   */
  async spendByKey(orgId: string, from: Date, to: Date, apiKeyIds?: string[]): Promise<{ total: Spend; byKey: Map<string, Spend> }> {
    for (const [name, date] of [
      ['from', from],
      ['to', to],
    ] as const) {
      if (date.getTime() % 1000 !== 0) throw new RangeError(`spend(): ${name} must be a whole second (got ${date.toISOString()})`);
    }
    if (from.getTime() % (DAY * 1000) !== 0 || to.getTime() % (DAY * 1000) !== 0) {
      const { total, byValue } = await this.spendByDimension(orgId, from, to, 'api_key_id', apiKeyIds);
      return { total, byKey: byValue };
    }
    const { sql, params } = spendByKeySql(orgId, from, to, apiKeyIds);
    const rows: Array<{ api_key_id: string; cost_nano: string; tokens: string }> = await this.dataSource.query(sql, params);
    const total: Spend = { costNano: 0n, tokens: 0n };
    const byKey = new Map<string, Spend>();
    for (const row of rows) {
      const spend = { costNano: BigInt(row.cost_nano), tokens: BigInt(row.tokens) };
      byKey.set(row.api_key_id, spend);
      total.costNano += spend.costNano;
      total.tokens += spend.tokens;
    }
    return { total, byKey };
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

/**
 * The spend statement: the daily per-key rollup plus the journal's pending deltas, in one
 * statement (one snapshot), so a record counts once its ingest returned, folded or not.
 */
export function spendByKeySql(orgId: string, from: Date, to: Date, apiKeyIds?: string[]): { sql: string; params: unknown[] } {
  const params: unknown[] = [orgId, from.toISOString(), to.toISOString()];
  if (apiKeyIds !== undefined) params.push(apiKeyIds);
  const where = `org_id = $1 AND bucket_start >= $2 AND bucket_start < $3${apiKeyIds !== undefined ? ' AND api_key_id = ANY($4)' : ''}`;
  const sql = `SELECT api_key_id, SUM(cost_nano)::text AS cost_nano, SUM(tokens)::text AS tokens
     FROM (SELECT api_key_id, SUM(cost_nano) AS cost_nano, SUM(input_tokens + output_tokens) AS tokens
           FROM ${rollup('dayByKey').table} WHERE ${where} GROUP BY api_key_id
           UNION ALL
           SELECT api_key_id, SUM(cost_nano), SUM(input_tokens + output_tokens)
           FROM ${JOURNAL_TABLE} WHERE ${where} GROUP BY api_key_id) u
     GROUP BY api_key_id`;
  return { sql, params };
}

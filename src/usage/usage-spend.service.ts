import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { JOURNAL_TABLE } from './rollup-journal';
import { rollup } from './rollups';
import { DAY } from './time-buckets';

export interface SpendScope {
  orgId: string;
  /** Narrows to one key of the org. */
  apiKeyId?: string;
}

export interface Spend {
  costNano: bigint;
  /** input_tokens + output_tokens. */
  tokens: bigint;
}

/** Spend of an org or key over whole UTC days, for budgets: the daily per-key rollup plus pending journal deltas. */
@Injectable()
export class UsageSpendService {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  /** Sum over the days starting in [from, to); both must be UTC midnights. */
  async spend(scope: SpendScope, from: Date, to: Date): Promise<Spend> {
    return (await this.spendByKey(scope.orgId, from, to, scope.apiKeyId === undefined ? undefined : [scope.apiKeyId])).total;
  }

  /**
   * An org's spend over the days starting in [from, to), in all and per key, in one read (of
   * the keys in `apiKeyIds` only, when given). Both bounds must be UTC midnights.
   */
  async spendByKey(orgId: string, from: Date, to: Date, apiKeyIds?: string[]): Promise<{ total: Spend; byKey: Map<string, Spend> }> {
    for (const [name, date] of [
      ['from', from],
      ['to', to],
    ] as const) {
      if (date.getTime() % (DAY * 1000) !== 0) throw new RangeError(`spend(): ${name} must be a UTC midnight (got ${date.toISOString()})`);
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

import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { ROLLUP_TABLES } from './rollups';
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

/** Spend of an org or key over whole UTC days, for budgets: reads the daily rollup only. */
@Injectable()
export class UsageSpendService {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  /** Sum over the days starting in [from, to); both must be UTC midnights. */
  async spend(scope: SpendScope, from: Date, to: Date): Promise<Spend> {
    for (const [name, date] of [
      ['from', from],
      ['to', to],
    ] as const) {
      if (date.getTime() % (DAY * 1000) !== 0) throw new RangeError(`spend(): ${name} must be a UTC midnight (got ${date.toISOString()})`);
    }
    const params: unknown[] = [scope.orgId, from.toISOString(), to.toISOString()];
    if (scope.apiKeyId !== undefined) params.push(scope.apiKeyId);
    const [row] = await this.dataSource.query(
      `SELECT COALESCE(SUM(cost_nano), 0)::text AS cost_nano, COALESCE(SUM(input_tokens + output_tokens), 0)::text AS tokens
       FROM ${ROLLUP_TABLES.day}
       WHERE org_id = $1 AND bucket_start >= $2 AND bucket_start < $3${scope.apiKeyId !== undefined ? ' AND api_key_id = $4' : ''}`,
      params,
    );
    return { costNano: BigInt(row.cost_nano), tokens: BigInt(row.tokens) };
  }
}

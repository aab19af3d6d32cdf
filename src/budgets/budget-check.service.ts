import { Injectable } from '@nestjs/common';
import { Counter } from 'prom-client';
import { ApiKeysService } from '../auth/api-keys.service';
import { AppException } from '../common/errors';
import { MetricsService } from '../metrics/metrics.service';
import { BlockStateStore, ScopeRef } from './budget-block-store';
import { scopeKey } from './budget-scope';
import { BudgetStateRefresher } from './budget-state-refresher';
import { BudgetCheckResultDto } from './dto/budget.dto';

/**
 * The gateway's pre-request check: a memory lookup of the key (its org and team, whether it is
 * revoked) and of the block state of the key, its org, its team and the end user. A revoked key is
 * never allowed.
 */
@Injectable()
export class BudgetCheckService {
  private readonly decisions: Counter<string>;

  constructor(
    private readonly apiKeys: ApiKeysService,
    private readonly store: BlockStateStore,
    private readonly refresher: BudgetStateRefresher,
    metrics: MetricsService,
  ) {
    this.decisions = metrics.counter('tally_budget_check_decisions_total', 'Budget check answers, by outcome (allowed or blocked)', ['outcome']);
    for (const outcome of ['allowed', 'blocked']) this.decisions.inc({ outcome }, 0);
  }

  /** `userId`: the end user of the request (X-On-Behalf-Of / `user_id`), whose budgets count too. */
  async check(apiKeyId: string, userId: string | null = null): Promise<BudgetCheckResultDto> {
    const key = await this.apiKeys.status(apiKeyId);
    if (key === null) throw AppException.notFound('API key', apiKeyId);
    if (key.revoked) {
      this.decisions.inc({ outcome: 'blocked' });
      return { allowed: false, reason: 'api_key_revoked', blocked_by: [] };
    }
    const scopes: ScopeRef[] = [
      { scope: 'apikey', scopeId: apiKeyId },
      { scope: 'org', scopeId: key.orgId },
      ...(key.teamId ? [{ scope: 'team' as const, scopeId: scopeKey('team', key.orgId, key.teamId) }] : []),
      ...(userId ? [{ scope: 'user' as const, scopeId: scopeKey('user', key.orgId, userId) }] : []),
    ];
    // A budget change here whose state write failed: never answer from the state it left behind.
    if (this.refresher.hasPending(scopes)) await this.refresher.retryPending();
    const { blocks: blocked_by, unknown } = await this.store.blocksOf(scopes);
    // Redis lost states that no rebuild has restored yet: PostgreSQL answers for those scopes.
    if (unknown.length > 0) blocked_by.push(...(await this.refresher.recoverScopes(unknown)));
    const allowed = blocked_by.length === 0;
    this.decisions.inc({ outcome: allowed ? 'allowed' : 'blocked' });
    return { allowed, blocked_by };
  }
}

import { Injectable } from '@nestjs/common';
import { Counter } from 'prom-client';
import { ApiKeysService } from '../auth/api-keys.service';
import { AppException } from '../common/errors';
import { MetricsService } from '../metrics/metrics.service';
import { BlockStateStore } from './budget-block-store';
import { BudgetStateRefresher } from './budget-state-refresher';
import { BudgetCheckResultDto } from './dto/budget.dto';

/**
 * The gateway's pre-request check: a memory lookup of the key (its org, whether it is revoked)
 * and of the block state of the key and its org. A revoked key is never allowed.
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

  async check(apiKeyId: string): Promise<BudgetCheckResultDto> {
    const key = await this.apiKeys.status(apiKeyId);
    if (key === null) throw AppException.notFound('API key', apiKeyId);
    if (key.revoked) {
      this.decisions.inc({ outcome: 'blocked' });
      return { allowed: false, reason: 'api_key_revoked', blocked_by: [] };
    }
    const scopes = [
      { scope: 'apikey' as const, scopeId: apiKeyId },
      { scope: 'org' as const, scopeId: key.orgId },
    ];
    // A budget change here whose state write failed: never answer from the state it left behind.
    if (this.refresher.hasPending(scopes)) await this.refresher.retryPending();
    const blocked_by = await this.store.blocksFor(key.orgId, apiKeyId);
    const allowed = blocked_by.length === 0;
    this.decisions.inc({ outcome: allowed ? 'allowed' : 'blocked' });
    return { allowed, blocked_by };
  }
}

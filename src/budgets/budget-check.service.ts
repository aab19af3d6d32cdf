import { Injectable } from '@nestjs/common';
import { Counter } from 'prom-client';
import { ApiKeysService } from '../auth/api-keys.service';
import { AppException } from '../common/errors';
import { MetricsService } from '../metrics/metrics.service';
import { BudgetStateService } from './budget-state.service';
import { BudgetCheckResultDto } from './dto/budget.dto';

/** The gateway's pre-request check: a memory lookup of the key's org and one Redis read. */
@Injectable()
export class BudgetCheckService {
  private readonly decisions: Counter<string>;

  constructor(
    private readonly apiKeys: ApiKeysService,
    private readonly state: BudgetStateService,
    metrics: MetricsService,
  ) {
    this.decisions = metrics.counter('tally_budget_check_decisions_total', 'Budget check answers, by outcome (allowed or blocked)', ['outcome']);
    for (const outcome of ['allowed', 'blocked']) this.decisions.inc({ outcome }, 0);
  }

  async check(apiKeyId: string): Promise<BudgetCheckResultDto> {
    const orgId = await this.apiKeys.orgOf(apiKeyId);
    if (orgId === null) throw AppException.notFound('API key', apiKeyId);
    const blocked_by = await this.state.blocksFor(orgId, apiKeyId);
    const allowed = blocked_by.length === 0;
    this.decisions.inc({ outcome: allowed ? 'allowed' : 'blocked' });
    return { allowed, blocked_by };
  }
}

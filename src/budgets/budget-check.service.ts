import { Injectable } from '@nestjs/common';
import { ApiKeysService } from '../auth/api-keys.service';
import { AppException } from '../common/errors';
import { BlockStateStore } from './budget-block-store';
import { BudgetStateRefresher } from './budget-state-refresher';
import { BudgetCheckResultDto } from './dto/budget.dto';

/**
 * The gateway's pre-request check: a memory lookup of the key (its org, whether it is revoked)
 * and of the block state of the key and its org. A revoked key is never allowed.
 */
@Injectable()
export class BudgetCheckService {
  constructor(
    private readonly apiKeys: ApiKeysService,
    private readonly store: BlockStateStore,
    private readonly refresher: BudgetStateRefresher,
  ) {}

  async check(apiKeyId: string): Promise<BudgetCheckResultDto> {
    const key = await this.apiKeys.status(apiKeyId);
    if (key === null) throw AppException.notFound('API key', apiKeyId);
    if (key.revoked) return { allowed: false, reason: 'api_key_revoked', blocked_by: [] };
    const scopes = [
      { scope: 'apikey' as const, scopeId: apiKeyId },
      { scope: 'org' as const, scopeId: key.orgId },
    ];
    // A budget change here whose state write failed: never answer from the state it left behind.
    if (this.refresher.hasPending(scopes)) await this.refresher.retryPending();
    const blocked_by = await this.store.blocksFor(key.orgId, apiKeyId);
    return { allowed: blocked_by.length === 0, blocked_by };
  }
}

import { Injectable } from '@nestjs/common';
import { ApiKeysService } from '../auth/api-keys.service';
import { AppException } from '../common/errors';
import { BudgetStateService } from './budget-state.service';
import { BudgetCheckResultDto } from './dto/budget.dto';

/** The gateway's pre-request check: a memory lookup of the key's org and one Redis read. */
@Injectable()
export class BudgetCheckService {
  constructor(
    private readonly apiKeys: ApiKeysService,
    private readonly state: BudgetStateService,
  ) {}

  async check(apiKeyId: string): Promise<BudgetCheckResultDto> {
    const orgId = await this.apiKeys.orgOf(apiKeyId);
    if (orgId === null) throw AppException.notFound('API key', apiKeyId);
    const blocked_by = await this.state.blocksFor(orgId, apiKeyId);
    return { allowed: blocked_by.length === 0, blocked_by };
  }
}

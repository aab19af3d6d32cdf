import { HttpStatus, Injectable } from '@nestjs/common';
import { Principal } from '../auth/principal';
import { AppException, ErrorCode, ErrorType } from '../common/errors';
import { BudgetCheckService } from './budget-check.service';
import { AuthorizeQueryDto, BudgetAuthorizationDto, DenyStatus } from './dto/authorize.dto';
import { BudgetBlockDto } from './dto/budget.dto';

/** Headers the gate sets for the proxy to pass upstream (allowed) or to the client (denied). */
export const GATE_HEADERS = {
  apiKeyId: 'x-tally-api-key-id',
  orgId: 'x-tally-org-id',
  budgetId: 'x-tally-budget-id',
} as const;

/**
 * The forward-auth gate (SPEC §7): the budget check for the key of the client request, turned
 * into an HTTP answer a reverse proxy understands. Answered like the check, from memory.
 */
@Injectable()
export class BudgetGateService {
  constructor(private readonly checks: BudgetCheckService) {}

  /** The authorization of the principal's request, or the budget denial (thrown). */
  async authorize(principal: Principal, query: AuthorizeQueryDto, now = Date.now()): Promise<BudgetAuthorizationDto> {
    // The end user of the client request (X-On-Behalf-Of): that user's budgets count too.
    const result = await this.checks.check(principal.apiKeyId, principal.onBehalfOf);
    // Revoked after the guard let it in: the same 401 the guard gives.
    if (result.reason === 'api_key_revoked') throw AppException.unauthorized(ErrorCode.InvalidApiKey, 'Invalid or revoked API key');
    if (!result.allowed) throw budgetDenial(result.blocked_by, query.deny_status ?? HttpStatus.TOO_MANY_REQUESTS, now);
    return { object: 'llm.budget.authorization', allowed: true, api_key_id: principal.apiKeyId, org_id: principal.orgId };
  }
}

/**
 * A 429 (or the status asked for) naming the first blocking budget, with `Retry-After`: the
 * seconds until every blocking window has reset (the request is allowed again only then).
 */
export function budgetDenial(blocks: BudgetBlockDto[], status: DenyStatus, now: number): AppException {
  const first = blocks[0];
  const resetsAt = Math.max(...blocks.map((b) => b.resets_at));
  const retryAfter = Math.max(1, resetsAt - Math.floor(now / 1000));
  const others = blocks.length > 1 ? ` (and ${blocks.length - 1} more)` : '';
  const message =
    `Budget '${first.budget_id}' (${first.scope}, owner ${first.owner}) blocks this API key${others} until ` +
    `${new Date(resetsAt * 1000).toISOString().replace('.000Z', 'Z')}; retry after ${retryAfter} s`;
  const type = status === HttpStatus.FORBIDDEN ? ErrorType.Permission : ErrorType.RateLimit;
  return new AppException(status, type, ErrorCode.BudgetExceeded, message, null, undefined, {
    'retry-after': String(retryAfter),
    [GATE_HEADERS.budgetId]: first.budget_id,
  });
}

import { All, Controller, HttpCode, HttpStatus, Query, Res } from '@nestjs/common';
import { ApiExcludeEndpoint, ApiExtension, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { Auth, GatewayAuthenticated } from '../auth/auth.decorators';
import { Principal } from '../auth/principal';
import { ApiErrorResponse, ResponseHeaders } from '../common/api-responses';
import { SdkNamespace } from '../common/sdk-namespace';
import { ANY_METHOD_EXTENSION } from '../common/any-method';
import { IgnoresBody } from '../common/http-guards';
import { budgetDenial, BudgetGateService, GATE_HEADERS } from './budget-gate.service';
import { AuthorizeQueryDto, BudgetAuthorizationDto } from './dto/authorize.dto';

const DENIAL_EXAMPLE_NOW = Date.UTC(2026, 10, 16, 18, 0, 0);
const denialExample = (status: 429 | 403) =>
  budgetDenial(
    [{ budget_id: 'bud_4kQ9mW2pL8xYc4RtV7bN1sDa', scope: 'apikey', owner: 'org', pct: 100.4, resets_at: DENIAL_EXAMPLE_NOW / 1000 + 6 * 3600 }],
    status,
    DENIAL_EXAMPLE_NOW,
  ).body();
const DENIAL_HEADERS: ResponseHeaders = {
  'Retry-After': { description: "Seconds until the blocking budgets' windows reset", schema: { type: 'integer', example: 21600 } },
  'X-Tally-Budget-Id': { description: 'The first blocking budget', schema: { type: 'string', example: 'bud_4kQ9mW2pL8xYc4RtV7bN1sDa' } },
};

/** The forward-auth gate's routes as Fastify names them (the second is Envoy's form, path rest ignored). */
export const GATE_ROUTES = ['/api/v1/llm/budgets/authorize', '/api/v1/llm/budgets/authorize/*'] as const;

/**
 * The forward-auth budget gate for reverse proxies (nginx `auth_request`, Envoy `ext_authz`,
 * Traefik ForwardAuth): the proxy forwards its client's own key, for any method.
 */
@ApiTags('budgets')
@SdkNamespace('llm.budgets')
@Controller('api/v1/llm/budgets')
export class BudgetGateController {
  constructor(private readonly gate: BudgetGateService) {}

  @All('authorize')
  @GatewayAuthenticated()
  @IgnoresBody()
  @HttpCode(HttpStatus.OK)
  @ApiExtension(ANY_METHOD_EXTENSION, true)
  @ApiOperation({
    summary: 'Forward-auth budget gate',
    description:
      'For reverse proxies: called with the client request\'s own `Authorization` (and `X-On-Behalf-Of`), with any HTTP method ' +
      '(documented as GET). 200 when the key is valid and no budget of the key or its org blocks it, with `X-Tally-Api-Key-Id` ' +
      'and `X-Tally-Org-Id` for the proxy to pass upstream; 401 for a missing, unknown or revoked key (any role passes); a budget ' +
      'denial is a 429 (or the `deny_status` asked for) with `Retry-After` and `code: "budget_exceeded"`. Answered from memory ' +
      "like the budget check, and not counted against the key's API rate limit: these calls are the gateway's traffic. " +
      "Envoy's `ext_authz` form, `/api/v1/llm/budgets/authorize/<client path>`, is the same gate (path rest and query ignored).",
  })
  @ApiResponse({
    status: HttpStatus.OK,
    type: BudgetAuthorizationDto,
    description: 'The client request may proceed',
    headers: {
      'X-Tally-Api-Key-Id': { description: 'The key of the client request', schema: { type: 'string', example: 'key_8hYt2LmQ4xWv9RkP3sZc6NbD' } },
      'X-Tally-Org-Id': { description: 'Its org', schema: { type: 'string', example: 'org_3ZkQ9mW2pL8xYc4RtV7bN1sD' } },
    },
  })
  @ApiErrorResponse(HttpStatus.BAD_REQUEST, 'Invalid `deny_status` or unknown query parameter (a proxy misconfiguration)')
  @ApiErrorResponse(HttpStatus.TOO_MANY_REQUESTS, 'A budget blocks the key', denialExample(429), DENIAL_HEADERS)
  @ApiErrorResponse(HttpStatus.FORBIDDEN, 'A budget blocks the key (with `deny_status=403`)', denialExample(403), DENIAL_HEADERS)
  @ApiErrorResponse(HttpStatus.SERVICE_UNAVAILABLE, 'Redis or the database is unavailable; retry after `Retry-After` seconds')
  async authorize(@Auth() principal: Principal, @Query() query: AuthorizeQueryDto, @Res({ passthrough: true }) reply: FastifyReply): Promise<BudgetAuthorizationDto> {
    return this.answer(reply, await this.gate.authorize(principal, query));
  }

  /**
   * Envoy's `ext_authz` appends the client's path (and query) to its `path_prefix`: the same
   * gate, with the rest of the path and the query ignored (they belong to the client request).
   */
  @All('authorize/*')
  @GatewayAuthenticated()
  @IgnoresBody()
  @HttpCode(HttpStatus.OK)
  @ApiExcludeEndpoint()
  async authorizePrefixed(
    @Auth() principal: Principal,
    @Query() _clientQuery: Record<string, unknown>,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<BudgetAuthorizationDto> {
    return this.answer(reply, await this.gate.authorize(principal, {}));
  }

  private answer(reply: FastifyReply, authorization: BudgetAuthorizationDto): BudgetAuthorizationDto {
    reply.header(GATE_HEADERS.apiKeyId, authorization.api_key_id).header(GATE_HEADERS.orgId, authorization.org_id);
    return authorization;
  }
}

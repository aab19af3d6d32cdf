import { Body, Controller, Delete, Get, Param, Post, Put, Query } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { Auth, Authenticated } from '../auth/auth.decorators';
import { API_KEY_NOT_FOUND, ApiKeyIdParamsDto, ORG_NOT_FOUND, OrgIdParamsDto } from '../auth/dto/api-key.dto';
import { Principal } from '../auth/principal';
import { Role } from '../auth/role';
import { notFound, Operation } from '../common/api-responses';
import { AFTER_LAST_ID, CursorPaginated, Idempotent } from '../common/sdk-extensions';
import { SdkNamespace } from '../common/sdk-namespace';
import { BudgetCheckService } from './budget-check.service';
import { toBudgetDto } from './budget.mapper';
import { BudgetEvaluator } from './budget-evaluator';
import { BudgetChangeWorkflow } from '../workflows/budget-change.workflow';
import { AppException } from '../common/errors';
import { Budget, BudgetScope } from './budget.entity';
import { BudgetsService } from './budgets.service';
import {
  BudgetCheckDto,
  BudgetCheckResultDto,
  BudgetDto,
  BudgetIdParamsDto,
  BudgetListDto,
  BudgetPageDto,
  DeletedBudgetDto,
  ListBudgetsQueryDto,
  OwnerQueryDto,
  SetBudgetDto,
  SetBudgetResultDto,
  TeamParamsDto,
  UserParamsDto,
} from './dto/budget.dto';
import { scopeKey } from './budget-scope';
import { budgetResponseExamples, BUDGET_CHECK_REQUEST_EXAMPLES, BUDGET_CHECK_RESPONSE_EXAMPLES, SET_BUDGET_REQUEST_EXAMPLES } from './dto/budget.examples';

const BUDGET_NOT_FOUND = notFound('Budget', 'bud_4kQ9mW2pL8xYc4RtV7bN1sDa');
const READERS = [Role.ClusterAdmin, Role.OrgAdmin, Role.Member];
const WRITERS = [Role.ClusterAdmin, Role.OrgAdmin];
const SET_DESCRIPTION =
  'Creates or replaces the budget of this scope and owner, and re-evaluates it against live spend at once. ' +
  'Only cluster admins set `owner: cluster` budgets. A webhook URL without a secret gets a generated `whsec_` secret, returned in this response only.';

@ApiTags('budgets')
@SdkNamespace('llm.budgets')
@Controller('api/v1/llm/budgets')
export class BudgetsController {
  constructor(
    private readonly budgets: BudgetsService,
    private readonly evaluator: BudgetEvaluator,
    private readonly checks: BudgetCheckService,
    private readonly changes: BudgetChangeWorkflow,
  ) {}

  @Put('apikey/:apiKeyId')
  @Authenticated(...WRITERS)
  @Operation({
    summary: 'Set an API key budget',
    description: SET_DESCRIPTION,
    body: { type: SetBudgetDto, examples: SET_BUDGET_REQUEST_EXAMPLES },
    response: SetBudgetResultDto,
    responseExamples: budgetResponseExamples('apikey'),
    notFound: API_KEY_NOT_FOUND,
  })
  setApiKey(@Auth() principal: Principal, @Param() params: ApiKeyIdParamsDto, @Body() body: SetBudgetDto): Promise<SetBudgetResultDto> {
    return this.set(principal, 'apikey', params.apiKeyId, body);
  }

  @Put('org/:orgId')
  @Authenticated(...WRITERS)
  @Operation({
    summary: 'Set an org budget',
    description: SET_DESCRIPTION,
    body: { type: SetBudgetDto, examples: SET_BUDGET_REQUEST_EXAMPLES },
    response: SetBudgetResultDto,
    responseExamples: budgetResponseExamples('org'),
    notFound: ORG_NOT_FOUND,
  })
  setOrg(@Auth() principal: Principal, @Param() params: OrgIdParamsDto, @Body() body: SetBudgetDto): Promise<SetBudgetResultDto> {
    return this.set(principal, 'org', params.orgId, body);
  }

  @Put('org/:orgId/teams/:teamId')
  @Authenticated(...WRITERS)
  @Operation({
    summary: 'Set a team budget',
    description: `${SET_DESCRIPTION} A team budget counts the records of the org's keys with this \`team_id\`.`,
    body: { type: SetBudgetDto, examples: SET_BUDGET_REQUEST_EXAMPLES },
    response: SetBudgetResultDto,
    responseExamples: budgetResponseExamples('team'),
    notFound: ORG_NOT_FOUND,
  })
  setTeam(@Auth() principal: Principal, @Param() params: TeamParamsDto, @Body() body: SetBudgetDto): Promise<SetBudgetResultDto> {
    return this.set(principal, 'team', scopeKey('team', params.orgId, params.teamId), body);
  }

  @Put('org/:orgId/users/:userId')
  @Authenticated(...WRITERS)
  @Operation({
    summary: 'Set an end-user budget',
    description: `${SET_DESCRIPTION} An end-user budget counts that user's records (\`user_id\`, X-On-Behalf-Of) across all of the org's keys.`,
    body: { type: SetBudgetDto, examples: SET_BUDGET_REQUEST_EXAMPLES },
    response: SetBudgetResultDto,
    responseExamples: budgetResponseExamples('user'),
    notFound: ORG_NOT_FOUND,
  })
  setUser(@Auth() principal: Principal, @Param() params: UserParamsDto, @Body() body: SetBudgetDto): Promise<SetBudgetResultDto> {
    return this.set(principal, 'user', scopeKey('user', params.orgId, params.userId), body);
  }

  @Get('org/:orgId/teams/:teamId')
  @Authenticated(...READERS)
  @Operation({ summary: 'Get a team\'s budgets', description: 'The team\'s budgets (cluster and org owner), with live spend.', response: BudgetListDto, notFound: ORG_NOT_FOUND })
  async getTeam(@Auth() principal: Principal, @Param() params: TeamParamsDto, @Query() query: OwnerQueryDto): Promise<BudgetListDto> {
    return this.listOf(principal, await this.budgets.listForScope(principal, 'team', scopeKey('team', params.orgId, params.teamId), query.owner));
  }

  @Get('org/:orgId/users/:userId')
  @Authenticated(...READERS)
  @Operation({ summary: 'Get an end user\'s budgets', description: 'The end user\'s budgets (cluster and org owner), with live spend.', response: BudgetListDto, notFound: ORG_NOT_FOUND })
  async getUser(@Auth() principal: Principal, @Param() params: UserParamsDto, @Query() query: OwnerQueryDto): Promise<BudgetListDto> {
    return this.listOf(principal, await this.budgets.listForScope(principal, 'user', scopeKey('user', params.orgId, params.userId), query.owner));
  }

  @Delete('org/:orgId/teams/:teamId')
  @Authenticated(...WRITERS)
  @Operation({ summary: 'Delete a team budget', description: 'Deletes the team\'s budget of `owner` (default `org`); its blocks lift at once and each `block` threshold crossed in a window that still holds is sent one `budget.threshold.resolved` webhook (its delivery log is no longer listed).', response: DeletedBudgetDto, notFound: BUDGET_NOT_FOUND })
  deleteTeam(@Auth() principal: Principal, @Param() params: TeamParamsDto, @Query() query: OwnerQueryDto): Promise<DeletedBudgetDto> {
    return this.deleteScope(principal, 'team', scopeKey('team', params.orgId, params.teamId), query);
  }

  @Delete('org/:orgId/users/:userId')
  @Authenticated(...WRITERS)
  @Operation({ summary: 'Delete an end-user budget', description: 'Deletes the end user\'s budget of `owner` (default `org`); its blocks lift at once and each `block` threshold crossed in a window that still holds is sent one `budget.threshold.resolved` webhook (its delivery log is no longer listed).', response: DeletedBudgetDto, notFound: BUDGET_NOT_FOUND })
  deleteUser(@Auth() principal: Principal, @Param() params: UserParamsDto, @Query() query: OwnerQueryDto): Promise<DeletedBudgetDto> {
    return this.deleteScope(principal, 'user', scopeKey('user', params.orgId, params.userId), query);
  }

  @Post('check')
  @Authenticated(Role.Ingest, Role.ClusterAdmin)
  @Operation({
    summary: 'Check whether budgets allow a request',
    description:
      'The gateway calls this before each request. Lists every budget of the key, its org, the key\'s team and the end user (`user_id`) whose `block` threshold is reached in the current window. ' +
      'A revoked key is never allowed (`allowed: false`, `reason: "api_key_revoked"`). Answered from live state in memory and Redis, not by aggregating ' +
      'records; while Redis is unreachable the answer is a 503 `redis_unavailable` with Retry-After, within about a second.',
    body: { type: BudgetCheckDto, examples: BUDGET_CHECK_REQUEST_EXAMPLES },
    response: BudgetCheckResultDto,
    responseExamples: BUDGET_CHECK_RESPONSE_EXAMPLES,
    notFound: notFound('API key', 'key_8hYt2LmQ4xWv9RkP3sZc6NbD', 'No such API key'),
  })
  @Idempotent()
  check(@Body() body: BudgetCheckDto): Promise<BudgetCheckResultDto> {
    return this.checks.check(body.api_key_id, body.user_id ?? null);
  }

  @Get()
  @Authenticated(...READERS)
  @Operation({
    summary: 'List budgets',
    description:
      'Cluster admins see every budget, org admins their org\'s, members their own key\'s. Each with its live spend. ' +
      'Oldest first, a page at a time (`limit`, default 100, at most 1000): while `has_more` is true, pass `last_id` as `after`. ' +
      '`alert_webhook_url` is in full only for callers who may change the budget, otherwise cut to `scheme://host/…`.',
    response: BudgetPageDto,
  })
  @CursorPaginated(AFTER_LAST_ID)
  async list(@Auth() principal: Principal, @Query() query: ListBudgetsQueryDto): Promise<BudgetPageDto> {
    const page = await this.budgets.list(principal, query);
    return { ...(await this.listOf(principal, page.items)), has_more: page.has_more, last_id: page.last_id };
  }

  @Get('org/:orgId')
  @Authenticated(...READERS)
  @Operation({ summary: 'Get an org\'s budgets', description: 'The org\'s budgets (cluster and org owner), with live spend.', response: BudgetListDto, notFound: ORG_NOT_FOUND })
  async getOrg(@Auth() principal: Principal, @Param() params: OrgIdParamsDto, @Query() query: OwnerQueryDto): Promise<BudgetListDto> {
    return this.listOf(principal, await this.budgets.listForScope(principal, 'org', params.orgId, query.owner));
  }

  @Get('apikey/:apiKeyId')
  @Authenticated(...READERS)
  @Operation({ summary: 'Get an API key\'s budgets', description: 'The key\'s budgets (cluster and org owner), with live spend.', response: BudgetListDto, notFound: API_KEY_NOT_FOUND })
  async getApiKey(@Auth() principal: Principal, @Param() params: ApiKeyIdParamsDto, @Query() query: OwnerQueryDto): Promise<BudgetListDto> {
    return this.listOf(principal, await this.budgets.listForScope(principal, 'apikey', params.apiKeyId, query.owner));
  }

  @Get(':budgetId')
  @Authenticated(...READERS)
  @Operation({ summary: 'Get a budget', description: 'One budget with its live spend.', response: BudgetDto, notFound: BUDGET_NOT_FOUND })
  async get(@Auth() principal: Principal, @Param() params: BudgetIdParamsDto): Promise<BudgetDto> {
    const budget = await this.budgets.getVisible(principal, params.budgetId);
    const [evaluation] = await this.evaluator.evaluateCurrent([budget]);
    if (!evaluation) throw AppException.internal(); // a stored row that cannot be evaluated (logged with its id)
    return toBudgetDto(evaluation, this.budgets.urlView(principal, budget));
  }

  @Delete(':budgetId')
  @Authenticated(...WRITERS)
  @Operation({ summary: 'Delete a budget', description: 'Deletes the budget; its blocks lift at once and each `block` threshold crossed in a window that still holds is sent one `budget.threshold.resolved` webhook (its delivery log is no longer listed).', response: DeletedBudgetDto, notFound: BUDGET_NOT_FOUND })
  async delete(@Auth() principal: Principal, @Param() params: BudgetIdParamsDto): Promise<DeletedBudgetDto> {
    const budget = await this.changes.delete(principal, params.budgetId);
    return { id: budget.id, object: 'llm.budget.deleted', deleted: true };
  }

  private async deleteScope(principal: Principal, scope: BudgetScope, scopeId: string, query: OwnerQueryDto): Promise<DeletedBudgetDto> {
    const budget = await this.budgets.getForScope(principal, scope, scopeId, query.owner ?? 'org');
    await this.changes.delete(principal, budget.id);
    return { id: budget.id, object: 'llm.budget.deleted', deleted: true };
  }

  private async set(principal: Principal, scope: BudgetScope, scopeId: string, body: SetBudgetDto): Promise<SetBudgetResultDto> {
    const { evaluation, generatedSecret } = await this.changes.set(principal, scope, scopeId, body);
    const dto: SetBudgetResultDto = toBudgetDto(evaluation, 'full'); // its author may change it
    if (generatedSecret) dto.webhook_secret = generatedSecret;
    return dto;
  }

  /** Budgets that cannot be evaluated (rows stored around the API) are left out, logged and counted. */
  private async listOf(principal: Principal, budgets: Budget[]): Promise<BudgetListDto> {
    const evaluations = await this.evaluator.evaluateCurrent(budgets);
    return { object: 'list', data: evaluations.map((e) => toBudgetDto(e, this.budgets.urlView(principal, e.budget))) };
  }
}

import { ID_PATTERN } from '../../common/ids';
import { EndUserIdField } from '../../usage/usage-fields';
import { JsonDecimal } from '../../common/json-decimal';
import { ListPageDto, ListPageQueryDto } from '../../common/list-page';
import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayMinSize,
  ArrayUnique,
  IsArray,
  IsIn,
  IsObject,
  IsOptional,
  IsString,
  IsUrl,
  Matches,
  MaxLength,
  MinLength,
  ValidateIf,
  ValidateNested,
} from 'class-validator';
import { Check, EnumField, ExactDecimalField, NO_CONTROL_CHARACTERS, StringField, WEBHOOK_SECRET_FORM } from '../../common/validation';
import { BUDGET_PERIODS, BudgetPeriod, isKnownTimeZone } from '../budget-window';
import type { BudgetOwner, BudgetScope, LimitKind, ThresholdAction } from '../budget.entity';

export const BUDGET_SCOPES: readonly BudgetScope[] = ['org', 'apikey', 'team', 'user'];
export const BUDGET_OWNERS: readonly BudgetOwner[] = ['cluster', 'org'];
export const LIMIT_KINDS: readonly LimitKind[] = ['cost', 'tokens'];
export const THRESHOLD_ACTIONS: readonly ThresholdAction[] = ['alert', 'block'];
/** SPEC §4: pct > 0, at most 6 decimals and 1,000,000,000 (the seed's SDK example sends 793338). */
export const MAX_PCT = '1000000000';
export const MAX_PCT_DECIMALS = 6;
/** SPEC §4: limit > 0, at most 9 decimals and 10^15. */
export const MAX_LIMIT = '1000000000000000';

@ApiSchema({ name: 'BudgetThreshold' })
export class ThresholdDto {
  @ExactDecimalField({
    description:
      'Percent of the limit: greater than 0, at most 6 decimals, at most 1,000,000,000, unique in the list. Read exactly in any JSON number form (`80`, `8e1`, `33.333333`).',
    example: 80,
    maxDecimals: MAX_PCT_DECIMALS,
    max: MAX_PCT,
    min: 'positive',
  })
  pct: string;

  @IsOptional()
  @IsIn(THRESHOLD_ACTIONS as ThresholdAction[], { message: `must be one of: ${THRESHOLD_ACTIONS.join(', ')}` })
  @ApiPropertyOptional({
    enum: THRESHOLD_ACTIONS,
    enumName: 'ThresholdAction',
    default: 'alert',
    description: '`alert` sends a webhook when crossed; `block` also makes the budget check refuse traffic',
  })
  action?: ThresholdAction;
}

@ApiSchema({ name: 'SetBudgetRequest' })
export class SetBudgetDto {
  @EnumField(BUDGET_PERIODS, { description: 'Budget window: day, week (from Monday) or month, in the budget\'s time zone', enumName: 'BudgetPeriod', example: 'weekly' })
  period: BudgetPeriod;

  @IsOptional()
  @IsString()
  @MaxLength(100)
  @Check('timeZone', (value) => typeof value === 'string' && isKnownTimeZone(value), 'must be an IANA time zone name (e.g. Europe/Amsterdam)')
  @ApiPropertyOptional({
    type: String,
    maxLength: 100,
    default: 'UTC',
    description: 'IANA time zone of the windows: days start at local midnight, weeks on Monday, months on the 1st, across daylight-saving changes',
    example: 'Europe/Amsterdam',
  })
  timezone?: string;

  @EnumField(LIMIT_KINDS, { description: 'What the limit counts: cost (major currency units) or tokens (input + output)', enumName: 'LimitKind', example: 'tokens' })
  limit_kind: LimitKind;

  @ExactDecimalField({
    description:
      'Limit in major units: currency amount for cost, token count for tokens. Greater than 0, at most 9 decimals, at most 10^15; read exactly in any JSON number form (`1e3` is 1000).',
    example: 3281.35,
    maxDecimals: 9,
    max: MAX_LIMIT,
    min: 'positive',
  })
  limit: string;

  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(20)
  @ArrayUnique((t: ThresholdDto) => (typeof t?.pct === 'string' ? t.pct : t), { message: 'must not repeat a pct' })
  // ValidateNested walks an array inside the array as more elements: [[]] passed it.
  @IsObject({ each: true, message: 'must be a list of threshold objects' })
  @ValidateNested({ each: true })
  @Type(() => ThresholdDto)
  @ApiProperty({ type: [ThresholdDto], minItems: 1, maxItems: 20, example: [{ pct: 80, action: 'alert' }, { pct: 100, action: 'block' }] })
  thresholds: ThresholdDto[];

  @EnumField(BUDGET_OWNERS, {
    description: 'cluster = the operator\'s ceiling (org admins read it only); org = the org\'s own budget',
    enumName: 'BudgetOwner',
    default: 'org',
    example: 'org',
    optional: true,
  })
  owner?: BudgetOwner;

  @ValidateIf((_o, v) => v !== null && v !== undefined)
  @IsString()
  @MaxLength(2048)
  @IsUrl({ protocols: ['http', 'https'], require_protocol: true, require_tld: false, allow_underscores: true }, { message: 'must be an http(s) URL' })
  @ApiPropertyOptional({
    type: String,
    format: 'uri',
    nullable: true,
    maxLength: 2048,
    description: 'Where threshold alerts are POSTed (signed per Standard Webhooks). Private addresses are refused.',
    example: 'https://hooks.example.com/tally',
  })
  webhook_url?: string | null;

  @ValidateIf((_o, v) => v !== null && v !== undefined)
  @IsString()
  @MinLength(1)
  @MaxLength(256)
  @Matches(NO_CONTROL_CHARACTERS, { message: 'must not contain control characters' })
  @Matches(WEBHOOK_SECRET_FORM, { message: 'after whsec_ must come non-empty, padded base64 (Standard Webhooks), or leave out the prefix' })
  @ApiPropertyOptional({
    type: String,
    nullable: true,
    minLength: 1,
    maxLength: 256,
    description:
      'Signing secret (`whsec_` + non-empty, padded base64, as Standard Webhooks libraries require; or any string without that prefix, used as UTF-8 bytes). Omitted: the current one is kept, or one is generated. null: a new one is generated. Never returned except when generated.',
    example: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  })
  webhook_secret?: string | null;
}

@ApiSchema({ name: 'BudgetSpend' })
export class SpendDto {
  @ApiProperty({
    description: 'Current window as an ISO 8601 interval, with the budget time zone\'s offsets (`Z` in UTC)',
    example: '2026-11-16T00:00:00Z/2026-11-23T00:00:00Z',
  })
  window: string;

  @ApiProperty({ description: 'Cost spent in the window, integer nano-units, as a string', example: '1250000000' })
  cost_spent_nano: string;

  @ApiProperty({ description: 'Cost spent in the window, major units', example: 1.25 })
  cost_spent: number;

  @ApiProperty({ description: 'Tokens (input + output) spent in the window, as a string', example: '182000' })
  tokens_spent: string;

  @ApiProperty({ description: 'Spent / limit × 100, in the budget\'s kind', example: 55.46 })
  pct: number;

  @ApiProperty({ type: 'integer', description: 'When the window ends and the spend resets, Unix seconds', example: 1795392000 })
  resets_at: number;

  @ApiProperty({
    type: 'integer',
    nullable: true,
    description:
      'Unix seconds at which the block limit (100 % without a block threshold) is reached at the window\'s average rate so far (rounded up to the second, computed exactly); the time of the evaluation once it is reached; null with no spend or when it is not reached in this window',
    example: 1795370400,
  })
  forecast_exhaustion_at: number | null;
}

@ApiSchema({ name: 'BudgetThresholdResult' })
export class ThresholdResultDto {
  @ApiProperty({ example: 80 })
  pct: number;

  @ApiProperty({ enum: THRESHOLD_ACTIONS, enumName: 'ThresholdAction', example: 'alert' })
  action: ThresholdAction;
}

@ApiSchema({ name: 'Budget' })
export class BudgetDto {
  @ApiProperty({ example: 'bud_4kQ9mW2pL8xYc4RtV7bN1sDa' })
  id: string;

  @ApiProperty({ enum: ['llm.budget'], example: 'llm.budget' })
  object: 'llm.budget';

  @ApiProperty({ enum: BUDGET_SCOPES, enumName: 'BudgetScope', example: 'apikey' })
  scope: BudgetScope;

  @ApiProperty({ example: 'key_8hYt2LmQ4xWv9RkP3sZc6NbD' })
  scope_id: string;

  @ApiProperty({ example: 'org_3ZkQ9mW2pL8xYc4RtV7bN1sD', description: 'The org the scope belongs to' })
  org_id: string;

  @ApiProperty({ enum: BUDGET_OWNERS, enumName: 'BudgetOwner', example: 'org' })
  owner: BudgetOwner;

  @ApiProperty({ enum: BUDGET_PERIODS, enumName: 'BudgetPeriod', example: 'weekly' })
  period: BudgetPeriod;

  @ApiProperty({ description: 'IANA time zone of the windows', example: 'Europe/Amsterdam' })
  timezone: string;

  @ApiProperty({ enum: LIMIT_KINDS, enumName: 'LimitKind', example: 'tokens' })
  limit_kind: LimitKind;

  @ApiProperty({
    type: Number,
    example: 3281.35,
    description: 'The limit exactly as set: every digit is written (up to 16 + 9), so read it with a decimal-aware JSON parser if you need them all',
  })
  limit: JsonDecimal;

  @ApiProperty({ type: [ThresholdResultDto] })
  thresholds: ThresholdResultDto[];

  @ApiProperty({
    type: String,
    nullable: true,
    example: 'https://hooks.example.com/tally',
    description:
      'Where alerts are POSTed. In full only for callers who may change this budget (cluster admins; org admins for `owner: org` budgets of their org); everyone else sees `scheme://host/…` (webhook URLs often carry tokens).',
  })
  alert_webhook_url: string | null;

  @ApiProperty({ type: SpendDto })
  spend: SpendDto;

  @ApiProperty({ type: 'integer', description: 'Unix seconds', example: 1795296000 })
  created_at: number;

  @ApiProperty({ type: 'integer', description: 'Unix seconds', example: 1795296000 })
  updated_at: number;
}

@ApiSchema({ name: 'SetBudgetResponse' })
export class SetBudgetResultDto extends BudgetDto {
  @ApiPropertyOptional({
    description: 'The generated webhook secret: present only in the response of the PUT that generated it',
    example: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  })
  webhook_secret?: string;
}

@ApiSchema({ name: 'BudgetList' })
export class BudgetListDto {
  @ApiProperty({ enum: ['list'], example: 'list' })
  object: 'list';

  @ApiProperty({ type: [BudgetDto] })
  data: BudgetDto[];
}

@ApiSchema({ name: 'BudgetPage' })
export class BudgetPageDto extends ListPageDto {
  @ApiProperty({ enum: ['list'], example: 'list' })
  object: 'list';

  @ApiProperty({ type: [BudgetDto], description: 'Oldest first' })
  data: BudgetDto[];
}

@ApiSchema({ name: 'DeletedBudget' })
export class DeletedBudgetDto {
  @ApiProperty({ example: 'bud_4kQ9mW2pL8xYc4RtV7bN1sDa' })
  id: string;

  @ApiProperty({ enum: ['llm.budget.deleted'], example: 'llm.budget.deleted' })
  object: 'llm.budget.deleted';

  @ApiProperty({ enum: [true], example: true })
  deleted: true;
}

export class ListBudgetsQueryDto extends ListPageQueryDto {
  @EnumField(BUDGET_SCOPES, { description: 'Only budgets of this scope', example: 'apikey', optional: true })
  scope?: BudgetScope;

  @EnumField(BUDGET_OWNERS, { description: 'Only budgets of this owner', example: 'org', optional: true })
  owner?: BudgetOwner;

  @StringField({ description: 'Only budgets of this org (cluster admins only)', maxLength: 40, pattern: ID_PATTERN, optional: true, example: 'org_3ZkQ9mW2pL8xYc4RtV7bN1sD' })
  org_id?: string;
}

export class OwnerQueryDto {
  @EnumField(BUDGET_OWNERS, { description: 'Only the budget of this owner', example: 'org', optional: true })
  owner?: BudgetOwner;
}

/** A team id as API keys carry it (`team_id`): 1-128 characters. */
export const TEAM_ID_MAX_LENGTH = 128;

export class TeamParamsDto {
  @StringField({ description: 'Org id', example: 'org_3ZkQ9mW2pL8xYc4RtV7bN1sD', maxLength: 40, pattern: ID_PATTERN })
  orgId: string;

  @StringField({ description: 'Team id (the `team_id` of the org\'s API keys)', example: 'team-search', maxLength: TEAM_ID_MAX_LENGTH })
  teamId: string;
}

export class UserParamsDto {
  @StringField({ description: 'Org id', example: 'org_3ZkQ9mW2pL8xYc4RtV7bN1sD', maxLength: 40, pattern: ID_PATTERN })
  orgId: string;

  @EndUserIdField({ description: 'End user id (the `user_id` of records, X-On-Behalf-Of): 1-150 printable ASCII characters, not `*`; URL-encoded in the path' })
  userId: string;
}

export class BudgetIdParamsDto {
  @StringField({ description: 'Budget id', example: 'bud_4kQ9mW2pL8xYc4RtV7bN1sDa', maxLength: 40, pattern: ID_PATTERN })
  budgetId: string;
}

@ApiSchema({ name: 'BudgetCheckRequest' })
export class BudgetCheckDto {
  @StringField({ description: 'The API key about to make a request', example: 'key_8hYt2LmQ4xWv9RkP3sZc6NbD', maxLength: 40, pattern: ID_PATTERN })
  api_key_id: string;

  @EndUserIdField({ description: 'The end user of the request (X-On-Behalf-Of of the client request): that user\'s budgets in the key\'s org count too. 1-150 printable ASCII characters, not `*`', optional: true })
  user_id?: string;
}

@ApiSchema({ name: 'BudgetBlock' })
export class BudgetBlockDto {
  @ApiProperty({ example: 'bud_4kQ9mW2pL8xYc4RtV7bN1sDa' })
  budget_id: string;

  @ApiProperty({ enum: BUDGET_SCOPES, enumName: 'BudgetScope', example: 'org' })
  scope: BudgetScope;

  @ApiProperty({ enum: BUDGET_OWNERS, enumName: 'BudgetOwner', example: 'cluster' })
  owner: BudgetOwner;

  @ApiProperty({ description: 'Spend as a percent of the limit when last evaluated', example: 104.2 })
  pct: number;

  @ApiProperty({ type: 'integer', description: 'When the window resets and the block lifts, Unix seconds', example: 1795392000 })
  resets_at: number;
}

export type BudgetCheckReason = 'api_key_revoked';
export const CHECK_REASONS: readonly BudgetCheckReason[] = ['api_key_revoked'];

@ApiSchema({ name: 'BudgetCheckResult' })
export class BudgetCheckResultDto {
  @ApiProperty({ example: false })
  allowed: boolean;

  /** Why a request is refused without any budget blocking it: the key is revoked (never allowed). */
  @ApiPropertyOptional({ enum: CHECK_REASONS, enumName: 'BudgetCheckReason', example: 'api_key_revoked' })
  reason?: BudgetCheckReason;

  @ApiProperty({ type: [BudgetBlockDto], description: 'Every budget of the key or its org whose block threshold is reached' })
  blocked_by: BudgetBlockDto[];
}

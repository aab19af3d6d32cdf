import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import { ID_PATTERN } from '../../common/ids';
import { Check, IntField, StringField } from '../../common/validation';
import { EndUserIdField, MODEL_MAX_LENGTH, PRINTABLE_PATTERN } from '../../usage/usage-fields';
import { BUDGET_OWNERS, BudgetCheckReason, CHECK_REASONS, LIMIT_KINDS } from '../../budgets/dto/budget.dto';
import type { BudgetOwner, BudgetScope, LimitKind } from '../../budgets/budget.entity';
import { DENIAL_REASONS, DenialReason, RESERVATION_STATUSES, ReservationStatus } from '../reservation-decision';

/** Token counts a reservation accepts: up to 10^9 each (keeps every amount the admission compares below 2^53). */
export const MAX_RESERVATION_TOKENS = 1_000_000_000;
const REQUEST_ID_PATTERN = /^[\x20-\x7E]+$/;
const BUDGET_SCOPES: readonly BudgetScope[] = ['org', 'apikey'];

@ApiSchema({ name: 'CreateReservationRequest' })
export class CreateReservationDto {
  @StringField({
    description: 'The idempotency key, per API key: the same request id again returns the same reservation and holds nothing more. 1-200 printable ASCII characters.',
    example: 'gw-req-123',
    maxLength: 200,
    pattern: REQUEST_ID_PATTERN,
    patternMessage: 'must be printable ASCII characters',
  })
  request_id: string;

  @StringField({ description: 'The API key about to make the request', example: 'key_8hYt2LmQ4xWv9RkP3sZc6NbD', maxLength: 40, pattern: ID_PATTERN })
  api_key_id: string;

  @StringField({
    description: 'The model about to be called: cost budgets price the hold at its current price',
    example: 'gpt-4o-mini',
    maxLength: MODEL_MAX_LENGTH,
    pattern: PRINTABLE_PATTERN,
    patternMessage: 'must be printable ASCII characters without spaces',
  })
  model: string;

  @IntField({ description: 'Input tokens of the request (priced at the input price)', example: 1200, min: 0, max: MAX_RESERVATION_TOKENS })
  input_tokens: number;

  @IntField({ description: 'The most output tokens the gateway would let the model produce', example: 4096, min: 1, max: MAX_RESERVATION_TOKENS })
  max_output_tokens: number;

  @IntField({ description: 'Deny unless at least this many output tokens fit; default 1', example: 1, min: 1, max: MAX_RESERVATION_TOKENS, optional: true, default: 1 })
  @Check(
    'notAboveMaxOutput',
    (value, body) => typeof value !== 'number' || typeof (body as CreateReservationDto).max_output_tokens !== 'number' || value <= (body as CreateReservationDto).max_output_tokens,
    'must not be greater than max_output_tokens',
  )
  min_output_tokens?: number;

  @IntField({ description: 'Seconds the hold lives unless settled or released (1-3600; default 600)', example: 600, min: 1, max: 3600, optional: true, default: 600 })
  ttl_seconds?: number;

  @EndUserIdField({ description: "The end user (X-On-Behalf-Of of the request): 1-150 printable ASCII characters, not `*`; that user's budgets in the key's org apply too", optional: true, nullable: true })
  user_id?: string | null;
}

export class ReservationIdParamsDto {
  @StringField({ description: 'Reservation id', example: 'res_7mQ2xLp9RkT4vW8cY3nB6sDa', maxLength: 40, pattern: ID_PATTERN })
  reservationId: string;
}

@ApiSchema({ name: 'ReservedAmount' })
export class ReservedDto {
  @ApiProperty({ description: 'input_tokens + granted_output_tokens, as a string (0 when denied)', example: '5296' })
  tokens: string;

  @ApiProperty({ description: 'Their price at the model\'s current price, integer nano-units as a string (0 when denied or unpriced)', example: '2814600' })
  cost_nano: string;
}

@ApiSchema({ name: 'ReservationDenial' })
export class DeniedByDto {
  @ApiProperty({ example: 'bud_4kQ9mW2pL8xYc4RtV7bN1sDa' })
  budget_id: string;

  @ApiProperty({ enum: BUDGET_SCOPES, enumName: 'BudgetScope', example: 'apikey' })
  scope: BudgetScope;

  @ApiProperty({ enum: BUDGET_OWNERS, enumName: 'BudgetOwner', example: 'org' })
  owner: BudgetOwner;

  @ApiProperty({
    enum: DENIAL_REASONS,
    enumName: 'ReservationDenialReason',
    description: '`budget_exhausted`: nothing left; `insufficient_budget`: less than min_output_tokens fits; `unpriced_model`: a cost budget applies and the model has no price',
    example: 'budget_exhausted',
  })
  reason: DenialReason;

  @ApiProperty({ type: 'integer', description: 'When the budget\'s window resets, Unix seconds', example: 1795392000 })
  resets_at: number;
}

@ApiSchema({ name: 'ReservationBudget' })
export class ReservationBudgetDto {
  @ApiProperty({ example: 'bud_4kQ9mW2pL8xYc4RtV7bN1sDa' })
  budget_id: string;

  @ApiProperty({ enum: BUDGET_SCOPES, enumName: 'BudgetScope', example: 'apikey' })
  scope: BudgetScope;

  @ApiProperty({ enum: BUDGET_OWNERS, enumName: 'BudgetOwner', example: 'org' })
  owner: BudgetOwner;

  @ApiProperty({ enum: LIMIT_KINDS, enumName: 'LimitKind', example: 'tokens' })
  limit_kind: LimitKind;

  @ApiProperty({ description: 'Lowest block pct × limit, rounded up, in tokens or nano-units (string)', example: '100000' })
  block_limit: string;

  @ApiProperty({ description: 'Spend recorded in the window (string)', example: '60000' })
  committed: string;

  @ApiProperty({ description: 'Live holds in the window, this one included (string)', example: '12000' })
  held: string;

  @ApiProperty({ description: 'block_limit − committed − held, at least 0 (string)', example: '28000' })
  remaining: string;

  @ApiProperty({ type: 'integer', description: 'When the window resets, Unix seconds', example: 1795392000 })
  resets_at: number;
}

@ApiSchema({ name: 'Reservation' })
export class ReservationDto {
  @ApiProperty({ enum: ['llm.budget.reservation'], example: 'llm.budget.reservation' })
  object: 'llm.budget.reservation';

  @ApiProperty({ example: 'res_7mQ2xLp9RkT4vW8cY3nB6sDa' })
  id: string;

  @ApiProperty({ example: 'gw-req-123' })
  request_id: string;

  @ApiProperty({ example: 'key_8hYt2LmQ4xWv9RkP3sZc6NbD' })
  api_key_id: string;

  @ApiProperty({ example: 'gpt-4o-mini' })
  model: string;

  @ApiProperty({
    enum: RESERVATION_STATUSES,
    enumName: 'ReservationStatus',
    description: '`held` until settled by a usage record, released, or expired at expires_at; `denied` holds nothing',
    example: 'held',
  })
  status: ReservationStatus;

  @ApiProperty({ description: 'Whether the reservation was granted (a denial is data, not an error)', example: true })
  allowed: boolean;

  /** Why it is denied without any budget denying it: the key is revoked (never granted; as the budget check's `reason`). Absent otherwise. */
  @ApiPropertyOptional({
    enum: CHECK_REASONS,
    enumName: 'BudgetCheckReason',
    description: 'Why it is denied without any budget denying it: the key is revoked, never granted (as the budget check\'s `reason`; `denied_by` and `budgets` are then empty). Absent otherwise.',
    example: 'api_key_revoked',
  })
  reason?: BudgetCheckReason;

  @ApiProperty({ type: 'integer', description: 'Cap the model call\'s output here: min(max_output_tokens, what every budget can still afford); 0 when denied', example: 4096 })
  granted_output_tokens: number;

  @ApiProperty({ type: ReservedDto })
  reserved: ReservedDto;

  @ApiProperty({ type: 'integer', nullable: true, description: 'When the hold stops counting, Unix seconds (null when denied)', example: 1795300200 })
  expires_at: number | null;

  @ApiProperty({ type: 'integer', nullable: true, description: 'Denials: seconds until the denying budgets\' windows reset (null when granted, or denied only for an unpriced model)', example: null })
  retry_after: number | null;

  @ApiProperty({ type: [DeniedByDto], description: 'Every budget that denied it (empty when granted)' })
  denied_by: DeniedByDto[];

  @ApiProperty({ type: [ReservationBudgetDto], description: 'Every applicable budget, with its figures at the moment of the decision' })
  budgets: ReservationBudgetDto[];
}

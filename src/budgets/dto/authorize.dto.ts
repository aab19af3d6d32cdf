import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { IsIn, IsOptional } from 'class-validator';
import { toIntegerOrRaw } from '../../common/validation';

/** The statuses a budget denial of the forward-auth gate may take. */
export const DENY_STATUSES = [429, 403] as const;
export type DenyStatus = (typeof DENY_STATUSES)[number];

export class AuthorizeQueryDto {
  @ApiPropertyOptional({
    type: 'integer',
    enum: DENY_STATUSES,
    default: 429,
    example: 403,
    description:
      'Status of a budget denial. `403` is for proxies that accept only 401/403 from an auth request (nginx `auth_request`): ' +
      'turn it back into a 429 with `error_page 403 = @…` (see the README).',
  })
  @IsOptional()
  @Transform(({ value }) => toIntegerOrRaw(value))
  @IsIn(DENY_STATUSES, { message: `must be one of: ${DENY_STATUSES.join(', ')}` })
  deny_status?: DenyStatus;
}

@ApiSchema({ name: 'BudgetAuthorization' })
export class BudgetAuthorizationDto {
  @ApiProperty({ enum: ['llm.budget.authorization'], example: 'llm.budget.authorization' })
  object: 'llm.budget.authorization';

  @ApiProperty({ enum: [true], example: true, description: 'Always true: a denial is a 401, 403 or 429' })
  allowed: true;

  @ApiProperty({ example: 'key_8hYt2LmQ4xWv9RkP3sZc6NbD', description: 'The key of the client request (also in `X-Tally-Api-Key-Id`)' })
  api_key_id: string;

  @ApiProperty({ example: 'org_3ZkQ9mW2pL8xYc4RtV7bN1sD', description: 'Its org (also in `X-Tally-Org-Id`)' })
  org_id: string;
}

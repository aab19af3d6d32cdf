import { ApiProperty, ApiSchema } from '@nestjs/swagger';
import { EnumArrayQueryField, IntField } from '../../common/validation';
import { EndTimeField, OrgIdFilterField, PageField, StartTimeField } from './query-fields';

export const COSTS_GROUP_BY = ['model', 'api_key_id', 'team_id', 'external_user_id', 'org_id'] as const;
export type CostsGroupBy = (typeof COSTS_GROUP_BY)[number];
export const COSTS_DEFAULT_LIMIT = 1000;
export const COSTS_MAX_LIMIT = 10000;

/** GET /api/v1/llm/usage/costs (SPEC §3.3). */
export class CostsQueryDto {
  @StartTimeField()
  start_time: number;

  @EndTimeField({ optional: false })
  end_time: number;

  @EnumArrayQueryField(COSTS_GROUP_BY, {
    description: 'Group costs by these fields (external_user_id is the user_id of records). Repeated keys, `group_by[]=` and commas are all accepted.',
    example: ['model'],
    optional: true,
  })
  group_by?: CostsGroupBy[];

  @OrgIdFilterField()
  org_id?: string;

  @IntField({ description: `Lines per page, 1-${COSTS_MAX_LIMIT}; default ${COSTS_DEFAULT_LIMIT}`, example: COSTS_DEFAULT_LIMIT, min: 1, max: COSTS_MAX_LIMIT, fromQuery: true, optional: true })
  limit?: number;

  @PageField()
  page?: string;
}

@ApiSchema({ name: 'CostLine' })
export class CostLineDto {
  @ApiProperty({ type: String, nullable: true, example: 'meetkai:functionary-urdu-mini-pak', description: 'When grouped by model' })
  model: string | null;

  @ApiProperty({ type: String, nullable: true, example: null, description: 'When grouped by api_key_id' })
  api_key_id: string | null;

  @ApiProperty({ type: String, nullable: true, example: null, description: 'When grouped by team_id (null for keys without a team)' })
  team_id: string | null;

  @ApiProperty({ type: String, nullable: true, example: null, description: 'When grouped by external_user_id (null for records without a user)' })
  external_user_id: string | null;

  @ApiProperty({ type: String, nullable: true, example: null, description: 'When grouped by org_id' })
  org_id: string | null;

  @ApiProperty({ example: 0.00525, description: 'Cost in major units (display only; cost_nano is exact)' })
  cost: number;

  @ApiProperty({ example: '5250000', description: 'Exact cost in nano-units (1e9 per major unit), as a string' })
  cost_nano: string;
}

@ApiSchema({ name: 'CostsReport' })
export class CostsReportDto {
  @ApiProperty({ enum: ['llm.usage.costs'], example: 'llm.usage.costs' })
  object: 'llm.usage.costs';

  @ApiProperty({ example: 'usd', description: 'Currency of every amount (lowercase ISO 4217)' })
  currency: string;

  @ApiProperty({ type: 'integer', example: 1704067200 })
  start_time: number;

  @ApiProperty({ type: 'integer', example: 1704153600 })
  end_time: number;

  @ApiProperty({ enum: COSTS_GROUP_BY, enumName: 'CostsGroupBy', isArray: true, example: ['model'] })
  group_by: CostsGroupBy[];

  @ApiProperty({ type: [CostLineDto], description: 'One line per group with usage in the range, most expensive first; a page of `limit` lines' })
  data: CostLineDto[];

  @ApiProperty({ description: 'Whether more lines follow: pass `next_page` as `page`', example: false })
  has_more: boolean;

  @ApiProperty({ type: String, nullable: true, description: 'Cursor of the next page, null on the last one', example: null })
  next_page: string | null;

  @ApiProperty({ example: 0.00525, description: 'Total over every line of the range (every page)' })
  total_cost: number;

  @ApiProperty({ example: '5250000', description: 'Exact total over every line of the range (every page), nano-units' })
  total_cost_nano: string;

  @ApiProperty({
    type: [String],
    example: ['meetkai:unpriced-preview'],
    description: 'Models with records in range that had no price (counted at 0): these costs are incomplete',
  })
  unpriced_models: string[];
}

import { ApiProperty, ApiSchema } from '@nestjs/swagger';
import { EnumArrayQueryField, EnumField, IntField } from '../../common/validation';
import { ApiKeyIdsField, EndTimeField, OrgIdFilterField, PageField, ProjectIdsField, StartTimeField } from './query-fields';

export const OPENAI_COSTS_GROUP_BY = ['project_id', 'line_item', 'api_key_id'] as const;
export type OpenAiCostsGroupBy = (typeof OPENAI_COSTS_GROUP_BY)[number];

/** GET /v1/organization/costs: OpenAI's Costs API parameters. */
export class OpenAiCostsQueryDto {
  @StartTimeField()
  start_time: number;

  @EndTimeField({ optional: true })
  end_time?: number;

  @EnumField(['1d'] as const, { description: 'Width of each bucket: only 1d', example: '1d', default: '1d', optional: true })
  bucket_width?: '1d';

  @IntField({ description: 'Number of buckets to return, 1-180; default 7', example: 7, min: 1, max: 180, fromQuery: true, optional: true })
  limit?: number;

  @PageField()
  page?: string;

  @ProjectIdsField()
  project_ids?: string[];

  @ApiKeyIdsField()
  api_key_ids?: string[];

  @EnumArrayQueryField(OPENAI_COSTS_GROUP_BY, {
    description: 'Group by these fields (line_item is the model)',
    example: ['line_item'],
    optional: true,
  })
  group_by?: OpenAiCostsGroupBy[];

  @OrgIdFilterField()
  org_id?: string;
}

@ApiSchema({ name: 'OpenAiCostsAmount' })
export class OpenAiCostsAmountDto {
  @ApiProperty({ example: 0.06, description: 'Cost in major units' })
  value: number;

  @ApiProperty({ example: 'usd' })
  currency: string;
}

@ApiSchema({ name: 'OpenAiCostsResult' })
export class OpenAiCostsResultDto {
  @ApiProperty({ enum: ['organization.costs.result'], example: 'organization.costs.result' })
  object: 'organization.costs.result';

  @ApiProperty({ type: OpenAiCostsAmountDto })
  amount: OpenAiCostsAmountDto;

  @ApiProperty({ type: String, nullable: true, example: null, description: 'When grouped by line_item: the model' })
  line_item: string | null;

  @ApiProperty({ type: String, nullable: true, example: null, description: 'When grouped by project_id' })
  project_id: string | null;

  @ApiProperty({ type: String, nullable: true, example: null, description: 'When grouped by api_key_id' })
  api_key_id: string | null;
}

@ApiSchema({ name: 'OpenAiCostsBucket' })
export class OpenAiCostsBucketDto {
  @ApiProperty({ enum: ['bucket'], example: 'bucket' })
  object: 'bucket';

  @ApiProperty({ type: 'integer', example: 1704067200 })
  start_time: number;

  @ApiProperty({ type: 'integer', example: 1704153600 })
  end_time: number;

  @ApiProperty({ type: [OpenAiCostsResultDto] })
  results: OpenAiCostsResultDto[];
}

@ApiSchema({ name: 'OpenAiCostsPage' })
export class OpenAiCostsPageDto {
  @ApiProperty({ enum: ['page'], example: 'page' })
  object: 'page';

  @ApiProperty({ type: [OpenAiCostsBucketDto] })
  data: OpenAiCostsBucketDto[];

  @ApiProperty({ example: false })
  has_more: boolean;

  @ApiProperty({ type: String, nullable: true, example: null })
  next_page: string | null;
}

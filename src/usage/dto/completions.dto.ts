import { ApiProperty, ApiSchema } from '@nestjs/swagger';
import { BoolField, EnumArrayQueryField, EnumField, IntField } from '../../common/validation';
import { BUCKET_WIDTHS, BucketWidth } from '../time-buckets';
import { ApiKeyIdsField, EndTimeField, ModelsField, OrgIdFilterField, PageField, ProjectIdsField, StartTimeField, UserIdsField } from './query-fields';

export const COMPLETIONS_GROUP_BY = ['user_id', 'api_key_id', 'model', 'project_id', 'batch', 'service_tier'] as const;
export type CompletionsGroupBy = (typeof COMPLETIONS_GROUP_BY)[number];

export const DEFAULT_LIMITS: Record<BucketWidth, number> = { '1d': 7, '1h': 24, '1m': 60 };
export const MAX_BUCKETS_PER_PAGE = 1440;

/** GET /api/v1/llm/usage/completions (and its OpenAI alias): the seed's parameters. */
export class CompletionsQueryDto {
  @StartTimeField()
  start_time: number;

  @EndTimeField({ optional: true })
  end_time?: number;

  @EnumField(BUCKET_WIDTHS, {
    description: 'Width of each time bucket (1m, 1h, 1d); buckets align to UTC boundaries',
    example: '1d',
    default: '1d',
    optional: true,
  })
  bucket_width?: BucketWidth;

  @IntField({
    description: 'Number of buckets to return, 1-1440; default 7 for 1d, 24 for 1h, 60 for 1m',
    example: 30,
    min: 1,
    max: MAX_BUCKETS_PER_PAGE,
    fromQuery: true,
    optional: true,
  })
  limit?: number;

  @PageField()
  page?: string;

  @UserIdsField()
  user_ids?: string[];

  @ApiKeyIdsField()
  api_key_ids?: string[];

  @ModelsField()
  models?: string[];

  @ProjectIdsField()
  project_ids?: string[];

  @BoolField({ description: 'true: batch requests only; false: non-batch only; omitted: both', example: false, fromQuery: true, optional: true })
  batch?: boolean;

  @EnumArrayQueryField(COMPLETIONS_GROUP_BY, {
    description: 'Group by these fields; a result field is null unless grouped by it. Repeated keys, `group_by[]=` and commas are all accepted.',
    example: ['model'],
    optional: true,
  })
  group_by?: CompletionsGroupBy[];

  @OrgIdFilterField()
  org_id?: string;
}

@ApiSchema({ name: 'UsageCompletionsResult' })
export class CompletionsResultDto {
  @ApiProperty({ enum: ['organization.usage.completions.result'], example: 'organization.usage.completions.result' })
  object: 'organization.usage.completions.result';

  @ApiProperty({ type: 'integer', example: 1200, description: 'Input tokens, cached ones included' })
  input_tokens: number;

  @ApiProperty({ type: 'integer', example: 300 })
  output_tokens: number;

  @ApiProperty({ type: 'integer', example: 200 })
  input_cached_tokens: number;

  @ApiProperty({ type: 'integer', example: 12, description: 'Requests (completion records)' })
  num_model_requests: number;

  @ApiProperty({ type: 'integer', example: 0 })
  input_audio_tokens: number;

  @ApiProperty({ type: 'integer', example: 0 })
  output_audio_tokens: number;

  @ApiProperty({ type: String, nullable: true, example: 'user_123', description: 'When grouped by user_id (null for records without a user)' })
  user_id: string | null;

  @ApiProperty({ type: String, nullable: true, example: 'key_abc123', description: 'When grouped by api_key_id' })
  api_key_id: string | null;

  @ApiProperty({ type: String, nullable: true, example: 'meetkai:functionary-urdu-mini-pak', description: 'When grouped by model' })
  model: string | null;

  @ApiProperty({ type: Boolean, nullable: true, example: null, description: 'When grouped by batch' })
  batch: boolean | null;

  @ApiProperty({ type: String, nullable: true, example: null, description: 'When grouped by service_tier' })
  service_tier: string | null;

  @ApiProperty({ type: String, nullable: true, example: null, description: 'When grouped by project_id' })
  project_id: string | null;
}

@ApiSchema({ name: 'UsageBucket' })
export class CompletionsBucketDto {
  @ApiProperty({ enum: ['bucket'], example: 'bucket' })
  object: 'bucket';

  @ApiProperty({ type: 'integer', example: 1704067200, description: 'Bucket start (Unix seconds, inclusive)' })
  start_time: number;

  @ApiProperty({ type: 'integer', example: 1704153600, description: 'Bucket end (Unix seconds, exclusive)' })
  end_time: number;

  @ApiProperty({ type: [CompletionsResultDto], description: 'One result per group; empty when the bucket has no usage' })
  results: CompletionsResultDto[];
}

@ApiSchema({ name: 'UsagePage' })
export class CompletionsPageDto {
  @ApiProperty({ enum: ['page'], example: 'page' })
  object: 'page';

  @ApiProperty({ type: [CompletionsBucketDto] })
  data: CompletionsBucketDto[];

  @ApiProperty({ example: false, description: 'Whether buckets remain before end_time' })
  has_more: boolean;

  @ApiProperty({ type: String, nullable: true, example: null, description: 'Cursor for the next page (pass as `page`), or null' })
  next_page: string | null;
}

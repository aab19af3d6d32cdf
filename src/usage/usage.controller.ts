import { Body, Controller, Get, Inject, Post, Query, StreamableFile } from '@nestjs/common';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import { ApiTags } from '@nestjs/swagger';
import { Auth, Authenticated } from '../auth/auth.decorators';
import { Principal } from '../auth/principal';
import { Role } from '../auth/role';
import { Operation } from '../common/api-responses';
import { CursorPaginated, Idempotent, PAGE_CURSOR } from '../common/sdk-extensions';
import { SdkNamespace } from '../common/sdk-namespace';
import { CompletionsPageDto, CompletionsQueryDto } from './dto/completions.dto';
import { CostsQueryDto, CostsReportDto } from './dto/costs.dto';
import { IngestRecordsDto, IngestResultDto, MAX_BATCH } from './dto/ingest.dto';
import { COSTS_REPORT_EXAMPLES, INGEST_REQUEST_EXAMPLES, USAGE_PAGE_EXAMPLES } from './dto/usage.examples';
import { IngestWorkflow } from '../workflows/ingest.workflow';
import { parseIngestBody } from './ingest-validator';
import { pageBody } from './page-body';
import { UsageReportsService } from './usage-reports.service';

export const USAGE_READERS = [Role.ClusterAdmin, Role.OrgAdmin, Role.Member];

export const COMPLETIONS_DESCRIPTION =
  'Usage of chat completions in UTC-aligned time buckets, aggregated from the ChatCompletion table. Every bucket in the page is ' +
  'returned, empty ones too; the first and last bucket are clipped to [start_time, end_time). A result field is null unless ' +
  'grouped by it. Cluster admins see every org (or one, with `org_id`), org admins their org, members their own key; with ' +
  'X-On-Behalf-Of only that end user\'s records. `1m` buckets reach back MINUTE_ROLLUP_RETENTION_DAYS (default 35 days); ' +
  'before RECORDS_RETENTION_DAYS (default 400) a range must start and end on whole hours (older usage is kept per hour and day).';

@ApiTags('usage')
@SdkNamespace('llm.usage')
@Controller('api/v1/llm/usage')
export class UsageController {
  constructor(
    private readonly ingest: IngestWorkflow,
    private readonly reports: UsageReportsService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  @Post('records')
  @Authenticated(Role.Ingest, Role.ClusterAdmin)
  @Operation({
    summary: 'Ingest completion records',
    description:
      `Stores a batch of 1 to ${MAX_BATCH} completion records. The whole batch is validated first: any bad record makes it a 400 ` +
      'naming every bad index and field, and nothing is written. A record whose id is already stored for its org is skipped and ' +
      'counted in `duplicates` (safe to retry). Records without `cost_nano` are priced from the price book at their created_at; ' +
      'a model without a price is stored at 0 and flagged unpriced. Records of revoked keys are accepted (the gateway may report late). ' +
      'Records older than the record retention (RECORDS_RETENTION_DAYS, default 400 days) are refused.',
    body: { type: IngestRecordsDto, examples: INGEST_REQUEST_EXAMPLES },
    response: IngestResultDto,
  })
  @Idempotent()
  async ingestRecords(@Body() body: unknown): Promise<IngestResultDto> {
    // Typed `unknown` so the global class-validator pipe leaves it alone: a hand-written validator
    // checks the batch in one pass (IngestRecordsDto stays its documented schema).
    return { object: 'usage.records.ingest', ...(await this.ingest.ingest(parseIngestBody(body, this.config.recordsRetentionDays))) };
  }

  @Get('completions')
  @Authenticated(...USAGE_READERS)
  @Operation({
    summary: 'Usage of chat completions',
    description: COMPLETIONS_DESCRIPTION,
    response: CompletionsPageDto,
    report: true,
    responseExamples: USAGE_PAGE_EXAMPLES,
  })
  @CursorPaginated(PAGE_CURSOR)
  async completions(@Auth() principal: Principal, @Query() query: CompletionsQueryDto): Promise<StreamableFile> {
    return pageBody(await this.reports.completions(principal, query));
  }

  @Get('costs')
  @Authenticated(...USAGE_READERS)
  @Operation({
    summary: 'Cost report',
    description:
      'Cost over [start_time, end_time), per group, most expensive first, with the exact total in nano-units and the models ' +
      'that had no price (their records count 0). Any alignment is exact: whole days are read from daily rollups, the ragged ' +
      'hours and minutes around them from hourly and per-minute rollups, and only sub-minute edges from raw records. Scoped ' +
      'like the usage report. `limit` lines per page (default 1000, at most 10000); while `has_more` is true, send `next_page` ' +
      'back as `page` (lines are ranked anew on each page, so records arriving for the range can shift them; the totals always ' +
      'cover every line). Every report query runs under REPORT_STATEMENT_TIMEOUT_MS: one that cannot finish in time is a 503 `report_timeout`.',
    response: CostsReportDto,
    report: true,
    responseExamples: COSTS_REPORT_EXAMPLES,
  })
  @CursorPaginated(PAGE_CURSOR)
  costs(@Auth() principal: Principal, @Query() query: CostsQueryDto): Promise<CostsReportDto> {
    return this.reports.costs(principal, query);
  }
}

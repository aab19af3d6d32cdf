import { Controller, Get, Query, StreamableFile } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { Auth, Authenticated } from '../auth/auth.decorators';
import { Principal } from '../auth/principal';
import { Operation } from '../common/api-responses';
import { CursorPaginated, PAGE_CURSOR } from '../common/sdk-extensions';
import { SdkNamespace } from '../common/sdk-namespace';
import { CompletionsPageDto, CompletionsQueryDto } from './dto/completions.dto';
import { OpenAiCostsPageDto, OpenAiCostsQueryDto } from './dto/openai-costs.dto';
import { USAGE_PAGE_EXAMPLES } from './dto/usage.examples';
import { COMPLETIONS_DESCRIPTION, USAGE_READERS } from './usage.controller';
import { pageBody } from './page-body';
import { UsageReportsService } from './usage-reports.service';

/**
 * SPEC §3.4: OpenAI's organization Usage API paths, so its clients work by changing only the
 * base URL to `http://<host>/v1`. Same service code as the MKA1 endpoints.
 */
@ApiTags('openai-compatible')
@SdkNamespace('organization.usage')
@Controller('v1/organization/usage')
export class OpenAiUsageController {
  constructor(private readonly reports: UsageReportsService) {}

  @Get('completions')
  @Authenticated(...USAGE_READERS)
  @Operation({
    summary: 'Usage of chat completions (OpenAI-compatible)',
    description: `${COMPLETIONS_DESCRIPTION} The same report as GET /api/v1/llm/usage/completions, at OpenAI's path.`,
    response: CompletionsPageDto,
    report: true,
    responseExamples: USAGE_PAGE_EXAMPLES,
  })
  @CursorPaginated(PAGE_CURSOR)
  async completions(@Auth() principal: Principal, @Query() query: CompletionsQueryDto): Promise<StreamableFile> {
    return pageBody(await this.reports.completions(principal, query));
  }
}

@ApiTags('openai-compatible')
@SdkNamespace('organization')
@Controller('v1/organization')
export class OpenAiCostsController {
  constructor(private readonly reports: UsageReportsService) {}

  @Get('costs')
  @Authenticated(...USAGE_READERS)
  @Operation({
    summary: 'Costs (OpenAI-compatible)',
    description:
      "OpenAI's Costs API: daily buckets of `organization.costs.result` with `amount: {value, currency}`. `line_item` is the " +
      'model. Scoped like the usage report.',
    response: OpenAiCostsPageDto,
    report: true,
  })
  @CursorPaginated(PAGE_CURSOR)
  async costs(@Auth() principal: Principal, @Query() query: OpenAiCostsQueryDto): Promise<StreamableFile> {
    return pageBody(await this.reports.openAiCosts(principal, query));
  }
}

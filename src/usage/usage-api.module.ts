import { Module } from '@nestjs/common';
import { WorkflowsModule } from '../workflows/workflows.module';
import { OpenAiCostsController, OpenAiUsageController } from './openai-compat.controller';
import { OtlpIngestService } from './otlp/otlp-ingest.service';
import { OtlpController } from './otlp/otlp.controller';
import { PricesController } from './prices.controller';
import { UsageController } from './usage.controller';
import { UsageModule } from './usage.module';

/** The usage HTTP side: loaded only by processes that serve the API. */
@Module({
  imports: [UsageModule, WorkflowsModule],
  controllers: [UsageController, OtlpController, PricesController, OpenAiUsageController, OpenAiCostsController],
  providers: [OtlpIngestService],
})
export class UsageApiModule {}

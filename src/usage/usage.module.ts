import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { CompletionRecord } from './entities/completion-record.entity';
import { ModelPrice } from './entities/model-price.entity';
import { UsageRollupDay, UsageRollupDayByKey, UsageRollupHour, UsageRollupHourByKey, UsageRollupMinute } from './entities/usage-rollup.entity';
import { OpenAiCostsController, OpenAiUsageController } from './openai-compat.controller';
import { IngestMetrics } from './ingest-metrics';
import { PriceBookService } from './price-book.service';
import { PricesController } from './prices.controller';
import { UsageAggregator } from './usage-aggregator';
import { UsageIngestService } from './usage-ingest.service';
import { UsageReportsService } from './usage-reports.service';
import { UsageSpendService } from './usage-spend.service';
import { UsageController } from './usage.controller';
import { OtlpIngestService } from './otlp/otlp-ingest.service';
import { OtlpController } from './otlp/otlp.controller';
import { ReservationsModule } from '../reservations/reservations.module';

/**
 * Completion records, price book, rollups and reports. Import it for the services (budgets use
 * {@link UsageSpendService} and {@link UsageIngestService.onIngested}); the HTTP side is
 * {@link UsageApiModule}, loaded only by processes that serve the API.
 */
@Module({
  imports: [TypeOrmModule.forFeature([CompletionRecord, ModelPrice, UsageRollupMinute, UsageRollupHour, UsageRollupDay, UsageRollupHourByKey, UsageRollupDayByKey])],
  providers: [PriceBookService, UsageAggregator, UsageIngestService, UsageReportsService, UsageSpendService, IngestMetrics],
  exports: [PriceBookService, UsageIngestService, UsageReportsService, UsageSpendService],
})
export class UsageModule {}

@Module({
  imports: [UsageModule, ReservationsModule],
  controllers: [UsageController, OtlpController, PricesController, OpenAiUsageController, OpenAiCostsController],
  providers: [OtlpIngestService],
})
export class UsageApiModule {}

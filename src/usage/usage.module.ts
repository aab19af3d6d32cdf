import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { CompletionRecord } from './entities/completion-record.entity';
import { ModelPrice } from './entities/model-price.entity';
import { UsageRollupDay, UsageRollupDayByKey, UsageRollupHour, UsageRollupHourByKey, UsageRollupMinute } from './entities/usage-rollup.entity';
import { IngestMetrics } from './ingest-metrics';
import { PriceBookService } from './price-book.service';
import { RollupJournalMetrics } from './rollup-journal-metrics';
import { UsageAggregator } from './usage-aggregator';
import { UsageIngestService } from './usage-ingest.service';
import { UsageReportsService } from './usage-reports.service';
import { UsageSpendService } from './usage-spend.service';

/**
 * Completion records, price book, rollups and reports. Import it for the services (budgets use
 * {@link UsageSpendService}; the ingest workflow {@link UsageIngestService}); the HTTP side is
 * UsageApiModule (usage-api.module.ts), loaded only by processes that serve the API.
 */
@Module({
  imports: [TypeOrmModule.forFeature([CompletionRecord, ModelPrice, UsageRollupMinute, UsageRollupHour, UsageRollupDay, UsageRollupHourByKey, UsageRollupDayByKey])],
  providers: [PriceBookService, UsageAggregator, UsageIngestService, UsageReportsService, UsageSpendService, IngestMetrics, RollupJournalMetrics],
  exports: [PriceBookService, UsageIngestService, UsageReportsService, UsageSpendService],
})
export class UsageModule {}

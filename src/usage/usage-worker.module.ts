import { Module } from '@nestjs/common';
import { getDataSourceToken } from '@nestjs/typeorm';
import { WORKER_DATA_SOURCE } from '../database/data-source';
import { PartitionMaintenanceService } from './partition-maintenance.service';
import { RollupFolderService } from './rollup-folder.service';
import { RollupOverflowHolds } from './rollup-overflow-holds';
import { UsageModule } from './usage.module';

/**
 * The rollup folder (journal → rollups) and the partition upkeep: loaded only by processes that
 * run the worker, on the worker's own pool (WORKER_DATABASE_POOL_SIZE), like the alert jobs.
 */
@Module({
  imports: [UsageModule],
  providers: [{ provide: getDataSourceToken(), useExisting: getDataSourceToken(WORKER_DATA_SOURCE) }, RollupOverflowHolds, RollupFolderService, PartitionMaintenanceService],
  exports: [RollupFolderService, PartitionMaintenanceService],
})
export class UsageWorkerModule {}

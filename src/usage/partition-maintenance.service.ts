import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { describeError } from '../common/error-mapping';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import { maintainPartitions, MaintenanceResult } from './partitions';

/**
 * The worker's storage upkeep (SPEC §8): at start and every PARTITION_MAINTENANCE_INTERVAL_MS,
 * creates the monthly partitions ahead and drops the ones past RECORDS_RETENTION_DAYS /
 * MINUTE_ROLLUP_RETENTION_DAYS (see partitions.ts). Workers side by side take turns.
 */
@Injectable()
export class PartitionMaintenanceService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(PartitionMaintenanceService.name);
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  onApplicationBootstrap(): void {
    const tick = () => {
      this.running = this.runOnce().catch((err) =>
        this.logger.error({ msg: 'Partition maintenance failed; it runs again at the next interval', ...describeError(err) }),
      );
    };
    tick();
    this.timer = setInterval(tick, this.config.partitionMaintenanceIntervalMs);
  }

  async beforeApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  async runOnce(now = Date.now() / 1000): Promise<MaintenanceResult> {
    const result = await maintainPartitions(this.dataSource, { records: this.config.recordsRetentionDays, minute: this.config.minuteRollupRetentionDays }, now);
    if (result.dropped.length > 0) this.logger.log({ msg: 'Dropped partitions past retention', dropped: result.dropped });
    for (const { step, error } of result.failed) {
      this.logger.warn({ msg: 'A partition maintenance step failed; the others ran, and the next run tries it again', step, ...describeError(error) });
    }
    return result;
  }
}

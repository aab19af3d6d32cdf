import { Injectable, OnModuleInit } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Gauge } from 'prom-client';
import { DataSource } from 'typeorm';
import { MetricsService } from '../metrics/metrics.service';
import { journalBacklog } from './rollup-journal';

/**
 * Fold lag and pending journal rows as Prometheus gauges, read from the database at scrape time
 * (so every process reports the same, cluster-wide figures).
 */
@Injectable()
export class RollupJournalMetrics implements OnModuleInit {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly metrics: MetricsService,
  ) {}

  onModuleInit(): void {
    const registry = this.metrics.registry;
    if (registry.getSingleMetric('tally_rollup_pending_deltas')) return;
    let backlog: Promise<{ rows: number; lagSeconds: number }> | undefined;
    // One query per scrape for both gauges.
    const read = () => (backlog ??= journalBacklog(this.dataSource).finally(() => setImmediate(() => (backlog = undefined))));
    new Gauge({
      name: 'tally_rollup_pending_deltas',
      help: 'Rollup journal rows not folded into the rollups yet',
      registers: [registry],
      async collect() {
        this.set((await read()).rows);
      },
    });
    new Gauge({
      name: 'tally_rollup_fold_lag_seconds',
      help: 'Age of the oldest rollup journal row not folded yet (0 when none is pending)',
      registers: [registry],
      async collect() {
        this.set((await read()).lagSeconds);
      },
    });
  }
}

import { Injectable, OnModuleInit } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Gauge } from 'prom-client';
import { DataSource } from 'typeorm';
import { MetricsService } from '../metrics/metrics.service';
import { withLateTimeout } from '../common/late-timer';
import { JournalBacklog, journalBacklog } from './rollup-journal';

const SCRAPE_TIMEOUT_MS = 1000;

/**
 * Fold lag, pending journal rows and held groups as Prometheus gauges, read from the database at
 * scrape time (so every process reports the same, cluster-wide figures).
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
    let backlog: Promise<JournalBacklog> | undefined;
    // The last figures read: a scrape while PostgreSQL is down or slow keeps them (and every other
    // series of the scrape) instead of failing the whole of /metrics, in the outage it should show.
    let last: JournalBacklog = { rows: 0, lagSeconds: 0, heldGroups: 0 };
    // One query per scrape for the three gauges, given at most a second.
    const read = () =>
      (backlog ??= withLateTimeout(journalBacklog(this.dataSource), SCRAPE_TIMEOUT_MS)
        .then((read) => (last = read))
        .catch(() => last)
        .finally(() => setImmediate(() => (backlog = undefined))));
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
    new Gauge({
      name: 'tally_rollup_fold_held_groups',
      help: 'Rollup groups (org, UTC day, key, team, model, project, batch, tier) held out of the folds because their sums would overflow a bigint',
      registers: [registry],
      async collect() {
        this.set((await read()).heldGroups);
      },
    });
  }
}

import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Counter } from 'prom-client';
import { DataSource } from 'typeorm';
import { describeError } from '../common/error-mapping';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import { MetricsService } from '../metrics/metrics.service';
import { FoldResult, vacuumJournal } from './rollup-journal';
import { RollupOverflowHolds } from './rollup-overflow-holds';
import { DAY } from './time-buckets';

/** Journal rows folded between two vacuums of the journal under steady load. */
const VACUUM_EVERY_DELTAS = 10_000;
/** When the journal drains, it is vacuumed if this many rows were folded since the last vacuum, or that long ago. */
const VACUUM_DRAINED_DELTAS = 1_000;
const VACUUM_DRAINED_MS = 60_000;

/**
 * The worker's folder: moves the rollup journal into the rollups, a batch per transaction, as
 * long as a fold moves anything; once one finds the journal empty (or fails), it pauses
 * ROLLUP_FOLD_INTERVAL_MS. Several workers may run it: a non-blocking advisory lock lets one
 * fold at a time, the others skip that round (and pause). A group whose deltas overflow a rollup
 * sum is held out of the folds (RollupOverflowHolds), so it cannot stop the folding of the others.
 */
@Injectable()
export class RollupFolderService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(RollupFolderService.name);
  private readonly folded: Counter<string>;
  private readonly vacuums: Counter<string>;
  private foldedSinceVacuum = 0;
  private lastVacuumAt = 0;
  private running = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly holds: RollupOverflowHolds,
    metrics: MetricsService,
  ) {
    this.folded = metrics.counter('tally_rollup_folded_deltas_total', 'Journal rows moved into the rollups by this process');
    this.vacuums = metrics.counter('tally_rollup_journal_vacuums_total', 'VACUUMs of the rollup journal run by this process');
  }

  onApplicationBootstrap(): void {
    this.running = true;
    this.loop = this.run();
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
    await this.holds.settled();
  }

  /** One fold transaction (exported for tests and the CLI). */
  async foldOnce(limit = this.config.rollupFoldBatch): Promise<FoldResult> {
    // A day's margin past the readers' cutoff: a reader whose clock is behind still finds its minutes.
    const minuteFrom = new Date((Date.now() / 1000 - (this.config.minuteRollupRetentionDays + 1) * DAY) * 1000);
    const result = await this.holds.fold(limit, minuteFrom);
    this.folded.inc(result.deltas);
    return result;
  }

  private async run(): Promise<void> {
    while (this.running) {
      let moved = 0;
      try {
        const result = await this.foldOnce();
        // Rows diverted to a held group's rows left the journal too: the journal may hold more.
        moved = result.deltas + result.held;
      } catch (err) {
        this.logger.error({ msg: 'A rollup fold failed; it is retried (the journal keeps the deltas, reports stay exact)', ...describeError(err) });
      }
      await this.vacuumWhenDue(moved);
      // Deltas came in while that fold ran (it sees only what was committed when it started):
      // fold them at once. The lag is then about two folds, not two folds and a pause.
      if (moved === 0 && this.running) await this.pause(this.config.rollupFoldIntervalMs);
    }
  }

  /**
   * Vacuums the journal every {@link VACUUM_EVERY_DELTAS} rows folded here, and when a fold finds
   * it drained after some (at most once a minute for a trickle): it is a queue, every row is
   * deleted within seconds, and without a vacuum its dead rows pile up (autovacuum may be off,
   * and its defaults wake once a minute), so every fold and every spend read scans more pages.
   * A failed vacuum waits for the next such moment, like a successful one.
   */
  private async vacuumWhenDue(moved: number): Promise<void> {
    this.foldedSinceVacuum += moved;
    if (!this.running || this.foldedSinceVacuum === 0) return;
    const due =
      this.foldedSinceVacuum >= VACUUM_EVERY_DELTAS ||
      (moved === 0 && (this.foldedSinceVacuum >= VACUUM_DRAINED_DELTAS || Date.now() - this.lastVacuumAt >= VACUUM_DRAINED_MS));
    if (!due) return;
    this.foldedSinceVacuum = 0;
    this.lastVacuumAt = Date.now();
    try {
      await vacuumJournal(this.dataSource);
      this.vacuums.inc();
    } catch (err) {
      this.logger.warn({ msg: 'Could not vacuum the rollup journal; tried again later', ...describeError(err) });
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

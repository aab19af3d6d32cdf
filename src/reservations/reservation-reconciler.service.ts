import { Inject, Injectable, Logger } from '@nestjs/common';
import { currentWindow } from '../budgets/budget-evaluation';
import { Budget } from '../budgets/budget.entity';
import { BudgetRepository } from '../budgets/budget.repository';
import { describeError } from '../common/error-mapping';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import { ReservationCounters } from './reservation-counters';
import { lowestBlockPct, seconds } from './reservation-budgets';
import { BudgetInWindow, ReservationLoader } from './reservation-loader.service';
import { ReservationMetrics } from './reservation-metrics';

export interface ReconcileResult {
  /** Loaded budget windows compared. */
  compared: number;
  /** Windows whose committed spend or holds differed from PostgreSQL (and were repaired). */
  repaired: number;
}

/**
 * Compares the loaded reservation counters of every budget with a block threshold (current
 * window) with PostgreSQL and repairs drift: committed spend missed by a settle that failed, holds
 * of an admission that crashed before storing its row, holds released in PostgreSQL whose Redis
 * removal failed. A window is first compared with an unlocked read; only one that differs is read
 * again under the org's exclusive lock with its fence moved (admissions in flight on it decide
 * again) and repaired. Runs in worker processes every RESERVATION_RECONCILE_INTERVAL_MS. Expiry needs
 * no run of this: an expired hold stops counting at its expires_at in every admission.
 */
@Injectable()
export class ReservationReconciler {
  private readonly logger = new Logger(ReservationReconciler.name);
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;

  constructor(
    private readonly budgets: BudgetRepository,
    private readonly counters: ReservationCounters,
    private readonly loader: ReservationLoader,
    private readonly metrics: ReservationMetrics,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** Starts the periodic runs (worker processes: ReservationsWorkerModule). */
  start(): void {
    this.timer = setInterval(() => {
      if (this.running) return;
      this.running = this.reconcileAll()
        .catch((err) => this.logger.error({ msg: 'Reservation reconciliation failed', ...describeError(err) }))
        .finally(() => (this.running = undefined));
    }, this.config.reservationReconcileIntervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  async reconcileAll(now = new Date()): Promise<ReconcileResult> {
    const byOrg = new Map<string, Budget[]>();
    for (const budget of await this.budgets.findBlocking()) {
      if (lowestBlockPct(budget) === undefined) continue;
      byOrg.set(budget.orgId, [...(byOrg.get(budget.orgId) ?? []), budget]);
    }
    const total: ReconcileResult = { compared: 0, repaired: 0 };
    for (const [orgId, budgets] of byOrg) {
      const result = await this.reconcileOrg(orgId, budgets, now);
      total.compared += result.compared;
      total.repaired += result.repaired;
    }
    return total;
  }

  private async reconcileOrg(orgId: string, budgets: Budget[], now: Date): Promise<ReconcileResult> {
    const windows: BudgetInWindow[] = budgets.map((budget) => {
      const w = currentWindow(budget, now);
      return { budget, window: { orgId, budgetId: budget.id, start: seconds(w.start), end: seconds(w.end) } };
    });
    const begun: Array<BudgetInWindow & { token: string }> = [];
    for (const w of windows) {
      const token = await this.counters.beginReconcile(w.window);
      if (token !== null) begun.push({ ...w, token });
    }
    if (begun.length === 0) return { compared: 0, repaired: 0 };
    // Read after 'begin' (spend settled since is noted in Redis), before the lock (see the loader).
    const { committed, seen } = await this.loader.committedSnapshot(orgId, begun);
    // First without the lock or a fence: a window that already equals PostgreSQL ends here, and its
    // admissions in flight are not made to decide again. Holds in flight differ, so a busy window
    // goes on to the fenced read.
    const unfenced = await this.loader.unfencedHolds(orgId, begun);
    const differing: typeof begun = [];
    for (const w of begun) {
      const id = w.budget.id;
      if ((await this.counters.checkReconcile(w.window, committed.get(id) ?? 0n, unfenced.get(id) ?? [], seen, w.token)) === 'differs') differing.push(w);
    }
    let repaired = 0;
    if (differing.length === 0) return { compared: begun.length, repaired };
    const { holds, generations } = await this.loader.fencedHolds(orgId, differing);
    for (const w of differing) {
      const result = await this.counters.finishReconcile(w.window, committed.get(w.budget.id) ?? 0n, holds.get(w.budget.id) ?? [], seen, generations.get(w.budget.id)!, w.token);
      if (!result) continue;
      const committedDrift = result.committed[0] !== result.committed[1];
      const heldDrift = result.held[0] !== result.held[1];
      if (committedDrift) this.metrics.repaired('committed');
      if (heldDrift) this.metrics.repaired('held');
      if (committedDrift || heldDrift) {
        repaired++;
        this.logger.warn({
          msg: 'Repaired reservation counters that drifted from PostgreSQL',
          orgId,
          budgetId: w.budget.id,
          committed: result.committed.map(String),
          held: result.held.map(String),
        });
      }
    }
    return { compared: begun.length, repaired };
  }
}

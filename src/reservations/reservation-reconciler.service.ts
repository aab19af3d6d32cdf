import { Inject, Injectable, Logger } from '@nestjs/common';
import { currentWindow } from '../budgets/budget-evaluation';
import { Budget } from '../budgets/budget.entity';
import { BudgetRepository } from '../budgets/budget.repository';
import { describeError } from '../common/error-mapping';
import { forEachLimited } from '../common/for-each-limited';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import { ReservationCounters } from './reservation-counters';
import { windowId } from './reservation-counter-types';
import { counterWindow, lowestBlockPct } from './reservation-budgets';
import { BudgetInWindow, ReservationLoader } from './reservation-loader.service';
import { ReservationMetrics } from './reservation-metrics';

/** Redis calls of one pass in flight at once (each window's own: independent of the others'). */
const REDIS_CALLS_IN_FLIGHT = 32;

export interface ReconcileResult {
  /** Loaded budget windows compared. */
  compared: number;
  /** Windows whose committed spend or holds differed from PostgreSQL (and were repaired). */
  repaired: number;
  /** Windows whose comparison failed (logged and counted; the others went on). */
  failed: number;
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
    let unreadable = 0;
    for (const budget of await this.budgets.findBlocking()) {
      try {
        if (lowestBlockPct(budget) === undefined) continue;
      } catch (err) {
        // A row stored around the API (thresholds that are not a list of objects): it fails alone.
        unreadable += this.failed(budget.orgId, 1, err, budget.id).failed;
        continue;
      }
      byOrg.set(budget.orgId, [...(byOrg.get(budget.orgId) ?? []), budget]);
    }
    const total: ReconcileResult = { compared: 0, repaired: 0, failed: unreadable };
    for (const [orgId, budgets] of byOrg) {
      // One org's failure never stops the others (reconcileOrg counts its own; this is for the unforeseen).
      const result = await this.reconcileOrg(orgId, budgets, now).catch((err) => this.failed(orgId, budgets.length, err));
      total.compared += result.compared;
      total.repaired += result.repaired;
      total.failed += result.failed;
    }
    return total;
  }

  private failed(orgId: string, windows: number, err: unknown, budgetId?: string): ReconcileResult {
    this.metrics.reconcileFailed(windows);
    this.logger.error({ msg: 'Could not compare reservation counters with PostgreSQL; the next pass tries again', orgId, budgetId, ...describeError(err) });
    return { compared: 0, repaired: 0, failed: windows };
  }

  private async reconcileOrg(orgId: string, budgets: Budget[], now: Date): Promise<ReconcileResult> {
    const result: ReconcileResult = { compared: 0, repaired: 0, failed: 0 };
    // A step fails only the windows it was for: one window's (a budget whose window cannot be
    // computed, a damaged key), or the org's open ones (a read of PostgreSQL).
    const attempt = async <T>(windows: number, budgetId: string | undefined, step: () => Promise<T>): Promise<T | undefined> => {
      try {
        return await step();
      } catch (err) {
        this.failed(orgId, windows, err, budgetId);
        result.failed += windows;
        return undefined;
      }
    };
    const begun: Array<BudgetInWindow & { token: string }> = [];
    // Most blocking budgets have no loaded counters (no reservations): 'begin' only says so. Many
    // calls in flight at once, not one round trip after another.
    await forEachLimited(budgets, REDIS_CALLS_IN_FLIGHT, (budget) =>
      attempt(1, budget.id, async () => {
        const window = counterWindow(budget, currentWindow(budget, now));
        const token = await this.counters.beginReconcile(window);
        if (token !== null) begun.push({ budget, window, token });
      }),
    );
    if (begun.length === 0) return result;
    // Read after 'begin' (spend settled since is noted in Redis), before any lock (see the loader).
    // First without the lock or a fence: a window that already equals PostgreSQL ends here, and its
    // admissions in flight are not made to decide again. Holds in flight differ, so a busy window
    // goes on to the fenced read.
    const read = await attempt(begun.length, undefined, () => this.loader.unfencedSnapshot(orgId, begun));
    if (!read) return result;
    const { committed, seen, holds: unfenced } = read;
    const differing: typeof begun = [];
    await forEachLimited(begun, REDIS_CALLS_IN_FLIGHT, async (w) => {
      const id = windowId(w.window);
      const outcome = await attempt(1, w.budget.id, () => this.counters.checkReconcile(w.window, committed.get(id) ?? 0n, unfenced.get(id) ?? [], seen, w.token));
      if (outcome === 'differs') differing.push(w);
      else if (outcome === 'equal') result.compared++;
    });
    if (differing.length === 0) return result;
    const fenced = await attempt(differing.length, undefined, () => this.loader.fencedHolds(orgId, differing));
    if (!fenced) return result;
    for (const w of differing) {
      const id = windowId(w.window);
      const repair = await attempt(1, w.budget.id, () => this.counters.finishReconcile(w.window, committed.get(id) ?? 0n, fenced.holds.get(id) ?? [], seen, fenced.generations.get(w.budget.id)!, w.token));
      if (!repair) continue;
      result.compared++;
      if (this.noteRepair(orgId, w.budget.id, repair)) result.repaired++;
    }
    return result;
  }

  /** Counts and logs what a repair changed; true when anything did. */
  private noteRepair(orgId: string, budgetId: string, repair: { committed: [bigint, bigint]; held: [bigint, bigint] }): boolean {
    const committedDrift = repair.committed[0] !== repair.committed[1];
    const heldDrift = repair.held[0] !== repair.held[1];
    if (committedDrift) this.metrics.repaired('committed');
    if (heldDrift) this.metrics.repaired('held');
    if (!committedDrift && !heldDrift) return false;
    this.logger.warn({ msg: 'Repaired reservation counters that drifted from PostgreSQL', orgId, budgetId, committed: repair.committed.map(String), held: repair.held.map(String) });
    return true;
  }
}

import { Inject, Injectable } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import { Budget } from '../budgets/budget.entity';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import { budgetSpends } from '../budgets/budget-spend';
import { UsageSpendService } from '../usage/usage-spend.service';
import { ReservationCounters } from './reservation-counters';
import { CounterWindow, HoldEntry, windowId } from './reservation-counter-types';
import { ReservationsRepository } from './reservations.repository';

/** Records stored this recently may still be settling when a rebuild reads PostgreSQL (the settle follows the commit by milliseconds). */
const RECENT_SECONDS = 15;

/** A budget in one window, as the loader and the reconciler read it from PostgreSQL. */
export interface BudgetInWindow {
  budget: Budget;
  window: CounterWindow;
}

/**
 * Rebuilds reservation counters from PostgreSQL, the truth: committed spend of the window (each
 * budget's own, in its time zone) from the rollups and the rollup journal, live holds from the reservations table. Until a window is
 * loaded, admissions against it grant nothing (they wait for this, then try again).
 */
@Injectable()
export class ReservationLoader {
  private readonly inflight = new Map<string, Promise<void>>();

  constructor(
    private readonly counters: ReservationCounters,
    private readonly repository: ReservationsRepository,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** Loads the windows (of one org) that are not loaded; concurrent calls for the same windows share one rebuild. */
  load(orgId: string, windows: BudgetInWindow[]): Promise<void> {
    return this.shared('load', orgId, windows, () => this.rebuild(orgId, windows));
  }

  /** Runs `run` for these windows, or joins the run of the same kind already under way for them in this process. */
  private shared(kind: string, orgId: string, windows: BudgetInWindow[], run: () => Promise<void>): Promise<void> {
    const key = `${kind}|${orgId}|${windows.map((w) => `${w.budget.id}:${w.window.epoch}:${w.window.start}`).sort().join(',')}`;
    let running = this.inflight.get(key);
    if (!running) {
      running = run().finally(() => this.inflight.delete(key));
      this.inflight.set(key, running);
    }
    return running;
  }

  private async rebuild(orgId: string, windows: BudgetInWindow[]): Promise<void> {
    // Before reading PostgreSQL: spend settled from now on is kept aside for the load.
    const tokens = await this.counters.beginLoad(windows.map((w) => w.window));
    const { committed, seen } = await this.committedSnapshot(orgId, windows);
    // Exclusive, with the fences moved before the holds are read: every row that granted from the
    // lost counters is in this read, or is not stored (its admission decides again on these).
    const { holds, generations } = await this.fencedHolds(orgId, windows);
    for (const [i, w] of windows.entries()) {
      const id = windowId(w.window);
      await this.counters.finishLoad(w.window, committed.get(id) ?? 0n, holds.get(id) ?? [], seen, generations.get(w.budget.id)!, tokens[i]);
    }
  }

  /**
   * Committed spend per budget (after step 1 of a rebuild or a repair), in one snapshot with the
   * records it counts that may be settled around now (stored in the last seconds, or settled since
   * step 1): their settle must not count them again.
   */
  committedSnapshot(orgId: string, windows: BudgetInWindow[]): Promise<{ committed: Map<string, bigint>; seen: string[] }> {
    return this.repository.withSnapshot((manager) => this.committedIn(manager, orgId, windows));
  }

  /**
   * The reconciler's first look: {@link committedSnapshot} and the live holds in the same
   * snapshot, with no lock and no fence moved.
   */
  unfencedSnapshot(orgId: string, windows: BudgetInWindow[]): Promise<{ committed: Map<string, bigint>; seen: string[]; holds: Map<string, HoldEntry[]> }> {
    return this.repository.withSnapshot(async (manager) => ({ ...(await this.committedIn(manager, orgId, windows)), holds: await this.holds(manager, orgId, windows) }));
  }

  private async committedIn(manager: EntityManager, orgId: string, windows: BudgetInWindow[]): Promise<{ committed: Map<string, bigint>; seen: string[] }> {
    const committed = await this.committed(new UsageSpendService(managerAsDataSource(manager), this.config), windows);
    const pending = [...new Set((await Promise.all(windows.map((w) => this.counters.pendingRecords(w.window)))).flat())];
    const from = new Date(Math.min(...windows.map((w) => w.window.start)) * 1000);
    const to = new Date(Math.max(...windows.map((w) => w.window.end)) * 1000);
    const recent = await this.repository.recentRecords(manager, orgId, from, to, RECENT_SECONDS);
    return { committed, seen: [...new Set([...recent, ...(await this.repository.recordsPresent(manager, orgId, pending))])] };
  }

  /**
   * Committed spend per window (by windowId: a budget may be loaded in its current and next
   * window at once), in the budget's time zone, from the rollups and the journal's pending deltas.
   */
  private async committed(spend: UsageSpendService, windows: BudgetInWindow[]): Promise<Map<string, bigint>> {
    // The window exactly as the budget's time zone has it (any whole seconds: see UsageSpendService).
    const spans = windows.map(({ budget, window }) => ({ budget, start: new Date(window.start * 1000), end: new Date(window.end * 1000) }));
    // One connection (the snapshot's): one read at a time.
    const spends = await budgetSpends(spend, spans, 1);
    return new Map(windows.map(({ budget, window }, i) => [windowId(window), budget.limitKind === 'cost' ? spends[i].costNano : spends[i].tokens]));
  }

  /**
   * Stamps the current fence of each budget on its loaded window whose generation fell behind
   * (the fence was bumped by a repair of another window of the budget, or by a rebuild that failed
   * before stamping), counters unchanged. Loaded counters are complete under any later fence: a
   * row is stored only from counters of its fence's generation, and only a load or a repair with
   * an older read could replace them, which their own checks refuse. No bump, no lock: a stamp
   * stales no admission. Windows not loaded are left to the next rebuild. Concurrent calls for the
   * same windows share one.
   */
  restamp(orgId: string, windows: BudgetInWindow[]): Promise<void> {
    return this.shared('restamp', orgId, windows, async () => {
      const fences = await this.repository.fences(orgId, windows.map((w) => w.budget.id));
      for (const w of windows) await this.counters.restamp(w.window, fences.get(w.budget.id)!);
    });
  }

  /**
   * Under the org's exclusive lock, committed before the counters are replaced: the budgets'
   * fences moved forward (their new values, to stamp on the counters), then their live holds.
   */
  async fencedHolds(orgId: string, windows: BudgetInWindow[]): Promise<{ holds: Map<string, HoldEntry[]>; generations: Map<string, string> }> {
    return this.repository.withOrgLock(orgId, 'exclusive', async (manager) => {
      const generations = await this.repository.bumpFences(manager, orgId, windows.map((w) => w.budget.id));
      return { generations, holds: await this.holds(manager, orgId, windows) };
    });
  }

  /** Live holds per window (by windowId), from the reservations table. */
  private async holds(manager: EntityManager, orgId: string, windows: BudgetInWindow[]): Promise<Map<string, HoldEntry[]>> {
    const holds = new Map<string, HoldEntry[]>();
    const stored = await this.repository.liveHolds(manager, orgId, windows.map((w) => ({ budgetId: w.budget.id, epoch: w.window.epoch, start: w.window.start })));
    for (const h of stored) {
      const window = windows.find((w) => w.budget.id === h.budgetId && w.window.start === h.windowStart);
      if (!window) continue;
      const id = windowId(window.window);
      holds.set(id, [...(holds.get(id) ?? []), { reservationId: h.reservationId, amount: h.amount, expiresAtMs: h.expiresAtMs }]);
    }
    return holds;
  }
}

/** The spend reads of UsageSpendService, run on one transaction's connection (its snapshot). */
function managerAsDataSource(manager: EntityManager): DataSource {
  return { query: (sql: string, params?: unknown[]) => manager.query(sql, params) } as unknown as DataSource;
}

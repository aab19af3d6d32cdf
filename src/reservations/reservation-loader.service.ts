import { Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { Budget } from '../budgets/budget.entity';
import { UsageSpendService } from '../usage/usage-spend.service';
import { CounterWindow, HoldEntry, ReservationCounters } from './reservation-counters';
import { ReservationsRepository } from './reservations.repository';

/** A budget in one window, as the loader and the reconciler read it from PostgreSQL. */
export interface BudgetInWindow {
  budget: Budget;
  window: CounterWindow;
}

/**
 * Rebuilds reservation counters from PostgreSQL, the truth: committed spend from the records'
 * daily per-key rollups of the window, live holds from the reservations table. Until a window is
 * loaded, admissions against it grant nothing (they wait for this, then try again).
 */
@Injectable()
export class ReservationLoader {
  private readonly inflight = new Map<string, Promise<void>>();

  constructor(
    private readonly counters: ReservationCounters,
    private readonly repository: ReservationsRepository,
    private readonly spend: UsageSpendService,
  ) {}

  /** Loads the windows (of one org) that are not loaded; concurrent calls for the same windows share one rebuild. */
  load(orgId: string, windows: BudgetInWindow[]): Promise<void> {
    const key = `${orgId}|${windows.map((w) => `${w.budget.id}:${w.window.start}`).sort().join(',')}`;
    let running = this.inflight.get(key);
    if (!running) {
      running = this.rebuild(orgId, windows).finally(() => this.inflight.delete(key));
      this.inflight.set(key, running);
    }
    return running;
  }

  private async rebuild(orgId: string, windows: BudgetInWindow[]): Promise<void> {
    // Before reading PostgreSQL: spend settled from now on is kept aside for the load.
    await this.counters.beginLoad(windows.map((w) => w.window));
    const committed = await this.committed(orgId, windows);
    // Exclusive: every admission that granted from the lost counters has stored its row. (The
    // spend is read before, on another connection: admissions waiting for the lock hold theirs.)
    await this.repository.withOrgLock(orgId, 'exclusive', async (manager) => {
      const holds = await this.holds(manager, orgId, windows);
      for (const w of windows) await this.counters.finishLoad(w.window, committed.get(w.budget.id) ?? 0n, holds.get(w.budget.id) ?? []);
    });
  }

  /** Committed spend per budget in its window, from the records' daily per-key rollups. */
  async committed(orgId: string, windows: BudgetInWindow[]): Promise<Map<string, bigint>> {
    const committed = new Map<string, bigint>();
    const byWindow = new Map<string, BudgetInWindow[]>();
    for (const w of windows) {
      const key = `${w.window.start}|${w.window.end}`;
      byWindow.set(key, [...(byWindow.get(key) ?? []), w]);
    }
    for (const members of byWindow.values()) {
      const { start, end } = members[0].window;
      const keys = members.some((m) => m.budget.scope === 'org') ? undefined : [...new Set(members.map((m) => m.budget.scopeId))];
      const { total, byKey } = await this.spend.spendByKey(orgId, new Date(start * 1000), new Date(end * 1000), keys);
      for (const { budget } of members) {
        const spend = budget.scope === 'org' ? total : (byKey.get(budget.scopeId) ?? { costNano: 0n, tokens: 0n });
        committed.set(budget.id, budget.limitKind === 'cost' ? spend.costNano : spend.tokens);
      }
    }
    return committed;
  }

  /** Live holds per budget in its window, from the reservations table (under the caller's exclusive lock). */
  async holds(manager: EntityManager, orgId: string, windows: BudgetInWindow[]): Promise<Map<string, HoldEntry[]>> {
    const holds = new Map<string, HoldEntry[]>();
    const stored = await this.repository.liveHolds(manager, orgId, windows.map((w) => ({ budgetId: w.budget.id, start: w.window.start })));
    for (const h of stored) {
      const window = windows.find((w) => w.budget.id === h.budgetId && w.window.start === h.windowStart);
      if (!window) continue;
      holds.set(h.budgetId, [...(holds.get(h.budgetId) ?? []), { reservationId: h.reservationId, amount: h.amount, expiresAtMs: h.expiresAtMs }]);
    }
    return holds;
  }
}

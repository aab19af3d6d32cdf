import { Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { Budget } from '../budgets/budget.entity';
import { currentWindow } from '../budgets/budget-evaluation';
import { BudgetWriteHooks } from '../budgets/budgets.service';
import { orgLockKey, RESERVATION_LOCK_CLASS } from './admission-sql';
import { seconds } from './reservation-budgets';

/**
 * What a budget PUT does to reservations, inside its transaction (BudgetsService.set). A change of
 * what the budget's counters count (period, time zone, limit kind, or whether a threshold blocks)
 * moves its `counter_epoch` (a trigger: migration BudgetCounterEpoch), so admissions use new
 * counters, loaded from PostgreSQL. The live holds of the budget must count there: each is moved
 * to the new epoch and the budget's current window, with its amount in the new unit (the
 * reservation's reserved tokens or reserved cost, which is what every budget of an admission holds).
 *
 * The org's reservation lock, exclusive, is taken before the budget is written: admissions store
 * their rows under it shared, so every row stored before the change is moved, and every row stored
 * after it was decided from the new budget (the change bumps its target's fence: a decision from
 * the old one is not stored). Settle and release remove a hold from the epoch its row names.
 */
@Injectable()
export class ReservationRedefinitions implements BudgetWriteHooks {
  async beforeWrite(manager: EntityManager, orgId: string): Promise<void> {
    await manager.query(`SELECT pg_advisory_xact_lock(${RESERVATION_LOCK_CLASS}, ${orgLockKey(orgId)})`);
  }

  async afterWrite(manager: EntityManager, budget: Budget, previousEpoch: string | null): Promise<void> {
    if (previousEpoch === budget.counterEpoch) return;
    const start = seconds(currentWindow(budget, new Date()).start);
    await manager.query(
      `UPDATE reservations r SET holds = (
         SELECT jsonb_agg(CASE WHEN e.h->>'budget_id' = $2
                  THEN e.h || jsonb_build_object('epoch', $3::text, 'window_start', $4::bigint,
                                                 'amount', (CASE WHEN $5 = 'tokens' THEN r.reserved_tokens ELSE r.reserved_cost_nano END)::text)
                  ELSE e.h END ORDER BY e.n)
         FROM jsonb_array_elements(r.holds) WITH ORDINALITY AS e(h, n)
         -- A hold in two windows of the budget (its current and next: windowsToHold) becomes one.
         WHERE e.h->>'budget_id' <> $2 OR e.n = (SELECT min(f.n) FROM jsonb_array_elements(r.holds) WITH ORDINALITY AS f(h, n) WHERE f.h->>'budget_id' = $2))
       WHERE r.org_id = $1 AND r.status = 'held' AND r.expires_at > now() AND r.holds @> jsonb_build_array(jsonb_build_object('budget_id', $2::text))`,
      [budget.orgId, budget.id, budget.counterEpoch, start, budget.limitKind],
    );
  }
}

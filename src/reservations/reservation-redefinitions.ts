import { Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { Budget } from '../budgets/budget.entity';
import { currentWindow } from '../budgets/budget-evaluation';
import { displayScopeId } from '../budgets/budget-scope';
import { BudgetWriteHooks, CounterDefinition } from '../budgets/budgets.service';
import { orgLockKey, RESERVATION_LOCK_CLASS } from './admission-sql';
import { lowestBlockPct, RESET_MARGIN_MS, seconds } from './reservation-budgets';

/**
 * What a budget PUT does to reservations, inside its transaction (BudgetsService.set). A change of
 * what the budget's counters count (period, time zone, limit kind, or whether a threshold blocks)
 * moves its `counter_epoch` (a trigger: migration BudgetCounterEpoch), so admissions use new
 * counters, loaded from PostgreSQL. The live holds of the budget must count there: each is moved
 * to the new epoch and the budget's current window (and its next one, when the hold outlives the
 * current: windowsToHold), with its amount in the new unit (the
 * reservation's reserved tokens or reserved cost, which is what every budget of an admission
 * holds; a hold of an unpriced model moves into a cost budget as 0, as its record will be priced).
 *
 * Such a PUT takes the org's reservation lock, exclusive, before the holds are read: admissions
 * store their rows under it shared, so every row stored before the change is moved, and every row
 * stored after it was decided from the new budget (the change bumps its target's fence: a decision
 * from the old one is not stored). Any other PUT takes no lock. Settle and release remove a hold
 * from the epoch its row names.
 */
@Injectable()
export class ReservationRedefinitions implements BudgetWriteHooks {
  async beforeRewrite(manager: EntityManager, existing: Budget, next: CounterDefinition): Promise<void> {
    if (!redefines(existing, next)) return;
    await manager.query(`SELECT pg_advisory_xact_lock(${RESERVATION_LOCK_CLASS}, ${orgLockKey(existing.orgId)})`);
  }

  async afterWrite(manager: EntityManager, budget: Budget, previousEpoch: string | null): Promise<void> {
    // A new budget has no holds; an unchanged epoch keeps its counters.
    if (previousEpoch === null || previousEpoch === budget.counterEpoch) return;
    const window = currentWindow(budget, new Date());
    // The holds of a key's or an end user's budget are on that key's or user's reservations only.
    const narrow = budget.scope === 'apikey' ? 'AND r.api_key_id = $6' : budget.scope === 'user' ? 'AND r.user_id = $6' : 'AND $6::text IS NULL';
    const narrowTo = budget.scope === 'apikey' ? budget.scopeId : budget.scope === 'user' ? displayScopeId(budget) : null;
    // Rows locked in id order first, as a settle locks them (reservations.repository.ts): two
    // multi-row updates in different orders would deadlock.
    await manager.query(
      `WITH locked AS MATERIALIZED (
         SELECT r.id FROM reservations r
         WHERE r.org_id = $1 AND r.status = 'held' AND r.expires_at > now() ${narrow}
           AND r.holds @> jsonb_build_array(jsonb_build_object('budget_id', $2::text))
         ORDER BY r.id FOR UPDATE)
       UPDATE reservations r SET holds = (
         SELECT jsonb_agg(CASE WHEN e.h->>'budget_id' = $2
                  THEN e.h || jsonb_build_object('epoch', $3::text, 'window_start', $4::bigint,
                                                 'amount', (CASE WHEN $5 = 'tokens' THEN r.reserved_tokens ELSE r.reserved_cost_nano END)::text)
                  ELSE e.h END ORDER BY e.n)
         FROM jsonb_array_elements(r.holds) WITH ORDINALITY AS e(h, n)
         -- A hold in two windows of the budget (its current and next: windowsToHold) becomes one.
         WHERE e.h->>'budget_id' <> $2 OR e.n = (SELECT min(f.n) FROM jsonb_array_elements(r.holds) WITH ORDINALITY AS f(h, n) WHERE f.h->>'budget_id' = $2))
         -- One that outlives the new window is held in the next one too, as an admission would hold it (windowsToHold).
         || CASE WHEN r.expires_at > to_timestamp($7) - make_interval(secs => $8) THEN jsonb_build_array(jsonb_build_object('budget_id', $2::text, 'epoch', $3::text, 'window_start', $7::bigint,
              'amount', (CASE WHEN $5 = 'tokens' THEN r.reserved_tokens ELSE r.reserved_cost_nano END)::text)) ELSE '[]'::jsonb END
       FROM locked WHERE r.org_id = $1 AND r.id = locked.id`,
      [budget.orgId, budget.id, budget.counterEpoch, seconds(window.start), budget.limitKind, narrowTo, seconds(window.end), RESET_MARGIN_MS / 1000],
    );
  }
}

/** Whether `next` changes what the budget's counters count (the trigger budgets_counter_epoch's rule). */
function redefines(existing: Budget, next: CounterDefinition): boolean {
  const blocks = (b: Pick<Budget, 'thresholds'>) => lowestBlockPct(b as Budget) !== undefined;
  let blocked: boolean;
  try {
    blocked = blocks(existing);
  } catch {
    // Thresholds stored around the API that cannot be read: the PUT that repairs them redefines the budget.
    return true;
  }
  return existing.period !== next.period || existing.timezone !== next.timezone || existing.limitKind !== next.limitKind || blocked !== blocks(next);
}

import { AdmitOutcome } from './reservation-counter-types';
import { ApplicableBudget, seconds } from './reservation-budgets';
import { BudgetFigures, DeniedBy, DenialReason, StoredDecision } from './reservation-decision';

/** The Redis admission's decision (its per-entry figures). */
type Decided = Extract<AdmitOutcome, { kind: 'decided' }>;

/*
 * What an admission answers and stores, from the Redis decision over its entries: each applicable
 * budget in its current window, some also in their next (windowsToHold: a budget's entries are
 * adjacent, the current one first).
 */

/**
 * The decision as answered: one figure per budget, of its current window; a denial per budget,
 * naming the later reset when its next window denies too (the hold would count there).
 */
export function decisionOf(budgets: ApplicableBudget[], outcome: Decided): StoredDecision {
  const deniedBy: DeniedBy[] = [];
  const figures: BudgetFigures[] = [];
  budgets.forEach((b, i) => {
    if (i > 0 && budgets[i - 1].budget.id === b.budget.id) return;
    const o = outcome.budgets[i];
    const resetsAt = seconds(b.window.end);
    const next = budgets[i + 1]?.budget.id === b.budget.id ? i + 1 : -1;
    const [reason, deniedUntil] =
      next >= 0 && outcome.budgets[next].reason ? [o.reason || outcome.budgets[next].reason, seconds(budgets[next].window.end)] : o.reason ? [o.reason, resetsAt] : ['', 0];
    if (reason) deniedBy.push({ budget_id: b.budget.id, scope: b.budget.scope, owner: b.budget.owner, reason: reason as DenialReason, resets_at: deniedUntil });
    const remaining = b.blockLimit - o.committed - o.held;
    figures.push({
      budget_id: b.budget.id,
      scope: b.budget.scope,
      owner: b.budget.owner,
      limit_kind: b.budget.limitKind,
      block_limit: b.blockLimit.toString(),
      committed: o.committed.toString(),
      held: o.held.toString(),
      remaining: (remaining > 0n ? remaining : 0n).toString(),
      resets_at: resetsAt,
    });
  });
  return { denied_by: deniedBy, budgets: figures };
}

/**
 * The generation of each budget's counters the admission decided from: its row is stored only
 * while each is its budget's fence. A budget held in two windows gives the lower of their two, so
 * the row is stored only once both carry the fence (loading one bumps it; the admission then
 * restamps the other).
 */
export function fencesOf(budgets: ApplicableBudget[], outcome: Decided): Record<string, string> {
  const fences: Record<string, string> = {};
  budgets.forEach((b, i) => {
    const generation = outcome.budgets[i].generation;
    const other = fences[b.budget.id];
    if (other === undefined || BigInt(generation) < BigInt(other)) fences[b.budget.id] = generation;
  });
  return fences;
}

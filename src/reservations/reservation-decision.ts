import type { BudgetOwner, BudgetScope, LimitKind } from '../budgets/budget.entity';

/**
 * The reservation decision: a contract with the gateway (SPEC §4.1), kept apart from the REST
 * DTOs so an API change cannot silently change what is stored and answered.
 */
export type DenialReason = 'budget_exhausted' | 'insufficient_budget' | 'unpriced_model';
export const DENIAL_REASONS: readonly DenialReason[] = ['budget_exhausted', 'insufficient_budget', 'unpriced_model'];

export type ReservationStatus = 'held' | 'denied' | 'settled' | 'released' | 'expired';
export const RESERVATION_STATUSES: readonly ReservationStatus[] = ['held', 'denied', 'settled', 'released', 'expired'];

export interface DeniedBy {
  budget_id: string;
  scope: BudgetScope;
  owner: BudgetOwner;
  reason: DenialReason;
  resets_at: number;
}

/** One applicable budget's figures at the moment of the decision (amounts in its kind, as strings). */
export interface BudgetFigures {
  budget_id: string;
  scope: BudgetScope;
  owner: BudgetOwner;
  limit_kind: LimitKind;
  block_limit: string;
  committed: string;
  held: string;
  remaining: string;
  resets_at: number;
}

/** Why a reservation is denied without any budget denying it (as the check's `reason`). */
export type ReservationReason = 'api_key_revoked';

/** What is stored with a reservation besides its amounts. */
export interface StoredDecision {
  /** Set only when no budget decided: the key is revoked (denied_by and budgets are then empty). */
  reason?: ReservationReason;
  denied_by: DeniedBy[];
  budgets: BudgetFigures[];
}

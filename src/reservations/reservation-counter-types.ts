/* The values the reservation counters (ReservationCounters, the Lua scripts in lua/) take and give. */

/** One budget's counters in one window. */
export interface CounterWindow {
  orgId: string;
  budgetId: string;
  /** The budget's counter_epoch: counters of another epoch are other counters. */
  epoch: string;
  /** Window bounds, Unix seconds. */
  start: number;
  end: number;
}

/**
 * New records' spend in one window: its exact sum, and the records themselves, asked for only when
 * the window takes them one by one (a rebuild or reconciler is reading it). A batch's settling
 * holds sums across its round trips, not an entry per record and budget.
 */
export interface WindowSpend {
  window: CounterWindow;
  sum: bigint;
  records(): Array<{ recordId: string; amount: bigint }>;
}

/** What tells a budget's windows apart (one {@link WindowSpend} each). */
export function windowId(window: CounterWindow): string {
  return `${window.budgetId}:${window.epoch}:${window.start}`;
}

/** A hold as the counters keep it. */
export interface HoldEntry {
  reservationId: string;
  amount: bigint;
  expiresAtMs: number;
}

/** One budget's part of an admission. */
export interface AdmitBudget {
  window: CounterWindow;
  kind: 'tokens' | 'cost' | 'unpriced';
  blockLimit: bigint;
  /** Cost terms (see reservation-budgets.ts costTerms); zeros for tokens. */
  q1: bigint;
  r1: bigint;
  qo: bigint;
  ro: bigint;
}

export interface AdmitRequest {
  orgId: string;
  apiKeyId: string;
  requestId: string;
  reservationId: string;
  ttlSeconds: number;
  inputTokens: number;
  maxOutputTokens: number;
  minOutputTokens: number;
  budgets: AdmitBudget[];
}

export type AdmitOutcome =
  | { kind: 'duplicate'; reservationId: string }
  | { kind: 'unloaded'; windows: CounterWindow[] }
  | {
      kind: 'decided';
      held: boolean;
      granted: number;
      expiresAtMs: number;
      nowMs: number;
      /** Per budget; `generation`: of the window's counters (see ReservationFence). */
      budgets: Array<{ committed: bigint; held: bigint; amount: bigint; reason: string; generation: string }>;
    };

import { computeCostNano, NANO_PER_UNIT, numberToDecimalString, parseDecimalToNano, TokenPrices } from '../common/money';
import { Budget } from '../budgets/budget.entity';
import { currentWindow } from '../budgets/budget-evaluation';
import { BudgetWindow } from '../budgets/budget-window';
import { CounterWindow } from './reservation-counter-types';

/**
 * The largest amount the admission script compares exactly: Lua numbers are doubles, exact for
 * integers below 2^53. Block limits above it are clamped to it (a stricter cap, never a looser
 * one): 9,007,199,254,740,991 tokens, or nano-units (about 9 million currency units) per window.
 */
export const MAX_EXACT = (1n << 53n) - 1n;

/** A budget a reservation is held against, in its current window. */
export interface ApplicableBudget {
  budget: Budget;
  window: BudgetWindow;
  /** Lowest block pct × limit, rounded up, in tokens or nano-units; at most {@link MAX_EXACT}. */
  blockLimit: bigint;
}

/** The lowest pct among the budget's `block` thresholds, or undefined when it has none. */
export function lowestBlockPct(budget: Budget): number | undefined {
  const pcts = budget.thresholds.filter((t) => t.action === 'block').map((t) => t.pct);
  return pcts.length ? Math.min(...pcts) : undefined;
}

/**
 * pct × limit in the budget's integer unit, rounded up: the check blocks once spend ≥ pct × limit
 * (exactly), i.e. at this integer, so both agree on when a budget is exhausted.
 */
export function blockLimitOf(budget: Budget, pct: number): bigint {
  const pctNano = parseDecimalToNano(numberToDecimalString(pct));
  const limitNano = parseDecimalToNano(budget.limitValue);
  const denominator = 100n * NANO_PER_UNIT * (budget.limitKind === 'tokens' ? NANO_PER_UNIT : 1n);
  const limit = (pctNano * limitNano + denominator - 1n) / denominator;
  return limit > MAX_EXACT ? MAX_EXACT : limit;
}

/** Runs one budget's step; a throw skips that budget (BudgetEvaluator.isolate: logged with its id, counted). */
export type Isolate = <T>(budget: Budget, step: () => T) => T | undefined;

/**
 * The budgets with a block threshold among `budgets`, in their windows at `now` (each in its own
 * `timezone`, as the budget evaluator reads them), ordered by id.
 * A budget whose limit or pct cannot be read (a row stored around the API) is left out through
 * `isolate`, as the check leaves it out: it never stops the others from counting.
 */
export function applicableBudgets(budgets: Budget[], now: Date, isolate: Isolate): ApplicableBudget[] {
  const out: ApplicableBudget[] = [];
  for (const budget of budgets) {
    const applicable = isolate(budget, (): ApplicableBudget | undefined => {
      const pct = lowestBlockPct(budget);
      return pct === undefined ? undefined : { budget, window: currentWindow(budget, now), blockLimit: blockLimitOf(budget, pct) };
    });
    if (applicable) out.push(applicable);
  }
  return out.sort((a, b) => (a.budget.id < b.budget.id ? -1 : a.budget.id > b.budget.id ? 1 : 0));
}

/** How much sooner than Redis's clock (which sets expires_at) this process may run: a hold this close to the reset holds past it too. */
export const RESET_MARGIN_MS = 5_000;

/**
 * The budget windows a reservation holds in: each budget's current window, and its next one as
 * well when the hold may outlive the current. Its record, stamped after the reset, counts in the
 * next window; without a hold there, that window's admissions would grant what the record then
 * adds on top (a cap exceeded by the holds in flight at every reset). A budget's entries are
 * adjacent, its current window first. Held in both, the reservation counts in the next window
 * from the start, until it is settled, released or expires.
 */
export function windowsToHold(budgets: ApplicableBudget[], now: Date, ttlSeconds: number, isolate: Isolate): ApplicableBudget[] {
  const outlives = now.getTime() + ttlSeconds * 1000 + RESET_MARGIN_MS;
  return budgets.flatMap((b) => {
    if (b.window.end.getTime() >= outlives) return [b];
    const next = isolate(b.budget, () => currentWindow(b.budget, b.window.end));
    return next ? [b, { ...b, window: next }] : [b];
  });
}

/** The price of a hold: input at the input price, output at the output price (SPEC §3.1's rounding). */
export function holdCostNano(inputTokens: number, outputTokens: number, prices: TokenPrices): bigint {
  return computeCostNano({ inputTokens, inputCachedTokens: 0, outputTokens }, prices);
}

/**
 * The terms the admission script prices with: input × input price = q1 × 10^6 + r1 and output
 * price = qo × 10^6 + ro, so price(g) = q1 + g × qo + floor((r1 + g × ro + 500,000) / 10^6).
 */
export function costTerms(inputTokens: number, prices: TokenPrices): { q1: bigint; r1: bigint; qo: bigint; ro: bigint } {
  const input = BigInt(inputTokens) * prices.inputPerMtokNano;
  return {
    q1: input / 1_000_000n,
    r1: input % 1_000_000n,
    qo: prices.outputPerMtokNano / 1_000_000n,
    ro: prices.outputPerMtokNano % 1_000_000n,
  };
}

/** Unix seconds. */
export function seconds(date: Date): number {
  return Math.floor(date.getTime() / 1000);
}

/** The counters of `budget` in `window` (of its current counter epoch). */
export function counterWindow(budget: Budget, window: BudgetWindow): CounterWindow {
  return { orgId: budget.orgId, budgetId: budget.id, epoch: budget.counterEpoch ?? '0', start: seconds(window.start), end: seconds(window.end) };
}

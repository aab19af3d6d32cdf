import { JsonDecimal } from '../common/json-decimal';
import { formatNano, nanoToNumber, NANO_PER_UNIT, numberToDecimalString, parseDecimalToNano } from '../common/money';
import type { Spend } from '../usage/usage-spend.service';
import { Budget, Threshold } from './budget.entity';
import { budgetWindow, BudgetWindow } from './budget-window';

export type { Spend };

export interface Evaluation {
  budget: Budget;
  window: BudgetWindow;
  spend: Spend;
  /** spent / limit × 100, truncated to 6 decimals. */
  pct: number;
  /** Thresholds whose pct is reached (spent × 100 ≥ pct × limit, compared exactly). */
  reached: Threshold[];
  blocked: boolean;
  /**
   * Unix seconds at which the block limit (100 % without a block threshold) is reached at the
   * window's average rate so far; null with no spend or when that is not within this window.
   */
  forecastExhaustionAt: number | null;
}

/** Spend in the budget's kind, in nano-units of its limit (limits are stored to 9 decimals). */
function spentNano(budget: Budget, spend: Spend): bigint {
  return budget.limitKind === 'cost' ? spend.costNano : spend.tokens * NANO_PER_UNIT;
}

/**
 * SPEC §4.2 `forecast_exhaustion_at`, in integers: with `spent` over the `elapsed` whole seconds
 * since the window's start, the target (lowest block pct × limit, or the limit) is reached at
 * start + ⌈target × elapsed / spent⌉ (rounded up to the second); once spent ≥ target, `at`
 * itself (not before the window starts); otherwise `at` is clamped into the window.
 */
export function forecastExhaustion(budget: Budget, spent: bigint, limit: bigint, window: BudgetWindow, at: Date): number | null {
  if (spent <= 0n) return null;
  const blockPcts = budget.thresholds.filter((t) => t.action === 'block').map((t) => parseDecimalToNano(numberToDecimalString(t.pct)));
  // target × 100 × 10^9 (pct in nano-units of a percent): exact for every stored pct.
  const pctNano = blockPcts.length > 0 ? blockPcts.reduce((a, b) => (b < a ? b : a)) : 100n * NANO_PER_UNIT;
  const targetScaled = pctNano * limit;
  const spentScaled = spent * 100n * NANO_PER_UNIT;
  const start = BigInt(Math.floor(window.start.getTime() / 1000));
  const end = BigInt(Math.floor(window.end.getTime() / 1000));
  const atSeconds = BigInt(Math.floor(at.getTime() / 1000));
  let now = atSeconds < start ? start : atSeconds;
  // Reached already: the evaluation's time, never in the past, also for a window already over (a
  // late record's): the average-rate line crossed it earlier, but that is no forecast.
  if (spentScaled >= targetScaled) return Number(now);
  if (now > end) now = end;
  const elapsed = now - start;
  const eta = start + (targetScaled * elapsed + spentScaled - 1n) / spentScaled;
  return eta < end ? Number(eta) : null;
}

/** The largest threshold pct the API takes (SetBudgetDto's MAX_PCT), in nano-units of a percent. */
const MAX_PCT_NANO = 1_000_000_000n * NANO_PER_UNIT;

export function evaluateBudget(budget: Budget, spend: Spend, window: BudgetWindow, at: Date = new Date()): Evaluation {
  const limit = parseDecimalToNano(budget.limitValue);
  if (limit <= 0n) throw new Error(`budget ${budget.id} has an invalid limit`);
  const pcts = budget.thresholds.map((t) => parseDecimalToNano(numberToDecimalString(t.pct)));
  // What the API stores (SetBudgetDto): a row written around it that the alerts table cannot hold
  // (numeric(16, 6)) is refused here, in the budget's own isolate, not by a batch's insert.
  if (pcts.some((p) => p <= 0n || p > MAX_PCT_NANO || p % 1000n !== 0n)) throw new Error(`budget ${budget.id} has a threshold pct outside (0, 1e9] or with more than 6 decimals`);
  const spent = spentNano(budget, spend);
  const pctMicro = (spent * 100n * 1_000_000n) / limit;
  const reached = budget.thresholds.filter((_t, i) => spent * 100n * NANO_PER_UNIT >= pcts[i] * limit);
  return {
    budget,
    window,
    spend,
    pct: Number(pctMicro) / 1_000_000,
    reached,
    blocked: reached.some((t) => t.action === 'block'),
    forecastExhaustionAt: forecastExhaustion(budget, spent, limit, window, at),
  };
}

export function currentWindow(budget: Budget, now: Date): BudgetWindow {
  return budgetWindow(budget.period, now, budget.timezone);
}

/** The limit exactly as stored (numeric, 9 decimals): a JSON number written with every digit by stringifyExact. */
export function exactLimit(budget: Budget): JsonDecimal {
  return new JsonDecimal(formatNano(parseDecimalToNano(budget.limitValue)));
}

export const costToNumber = nanoToNumber;

/** Records up to this far back still count for their window (SPEC §5: late records). */
export const LATE_RECORD_HORIZON_MS = 40 * 86_400_000;

/** The window before the current one (evaluated once more after a boundary). */
export function previousWindow(budget: Budget, now: Date): BudgetWindow {
  return budgetWindow(budget.period, new Date(currentWindow(budget, now).start.getTime() - 1), budget.timezone);
}

/**
 * Whether the budget existed during the window (it ended after the budget was created): late
 * records of a window that ended before never alert for it, whatever they add up to, since no
 * such budget applied then.
 */
export function existedDuring(budget: Budget, window: BudgetWindow): boolean {
  return !(budget.createdAt instanceof Date) || window.end.getTime() > budget.createdAt.getTime();
}

/**
 * The distinct windows of the budget that hold the given instants (an ingest's records), within
 * the late-record horizon, not in the future, and not over before the budget existed.
 */
export function windowsHolding(budget: Budget, instants: Date[], now: Date): BudgetWindow[] {
  const windows = new Map<number, BudgetWindow>();
  const oldest = now.getTime() - LATE_RECORD_HORIZON_MS;
  for (const at of instants) {
    const window = budgetWindow(budget.period, at, budget.timezone);
    if (window.end.getTime() <= oldest || window.start.getTime() > now.getTime() || !existedDuring(budget, window)) continue;
    windows.set(window.start.getTime(), window);
  }
  return [...windows.values()].sort((a, b) => a.start.getTime() - b.start.getTime());
}

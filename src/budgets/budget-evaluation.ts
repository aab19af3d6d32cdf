import { scaledToNumber, toScaled } from '../common/decimal';
import { Budget, Threshold } from './budget.entity';
import { budgetWindow, BudgetWindow } from './budget-window';

/** What a scope spent in a window: exact integers. */
export interface Spend {
  costNano: bigint;
  tokens: bigint;
}

export interface Evaluation {
  budget: Budget;
  window: BudgetWindow;
  spend: Spend;
  /** spent / limit × 100, to 6 decimals. */
  pct: number;
  /** Thresholds whose pct is reached (spent × 100 ≥ pct × limit, compared exactly). */
  reached: Threshold[];
  blocked: boolean;
}

const SCALE = 9; // limits and costs in nano-units of the major unit
const PCT_SCALE = 6n;
const PCT_FACTOR = 10n ** PCT_SCALE;

/** Spend in the budget's kind, scaled by 1e9 like its limit. */
function spentScaled(budget: Budget, spend: Spend): bigint {
  return budget.limitKind === 'cost' ? spend.costNano : spend.tokens * 10n ** BigInt(SCALE);
}

export function evaluateBudget(budget: Budget, spend: Spend, window: BudgetWindow): Evaluation {
  const limit = toScaled(budget.limitValue, SCALE);
  if (limit === null || limit <= 0n) throw new Error(`budget ${budget.id} has an invalid limit`);
  const spent = spentScaled(budget, spend);
  const pctMicro = (spent * 100n * PCT_FACTOR) / limit;
  const reached = budget.thresholds.filter((t) => {
    const threshold = toScaled(t.pct, Number(PCT_SCALE));
    return threshold !== null && spent * 100n * PCT_FACTOR >= threshold * limit;
  });
  return {
    budget,
    window,
    spend,
    pct: scaledToNumber(pctMicro, Number(PCT_SCALE)),
    reached,
    blocked: reached.some((t) => t.action === 'block'),
  };
}

export function currentWindow(budget: Budget, now: Date): BudgetWindow {
  return budgetWindow(budget.period, now);
}

export function limitAsNumber(budget: Budget): number {
  return Number(budget.limitValue);
}

export function costToNumber(costNano: bigint): number {
  return scaledToNumber(costNano, SCALE);
}


import { Injectable, Logger } from '@nestjs/common';
import { Counter } from 'prom-client';
import { describeError } from '../common/error-mapping';
import { MetricsService } from '../metrics/metrics.service';
import { UsageSpendService } from '../usage/usage-spend.service';
import { Budget } from './budget.entity';
import { budgetSpends } from './budget-spend';
import { currentWindow, evaluateBudget, Evaluation } from './budget-evaluation';
import { BudgetWindow } from './budget-window';

/** A budget and the window to evaluate it in. */
export interface EvaluationTarget {
  budget: Budget;
  window: BudgetWindow;
}

/** Spend reads one evaluation runs at once (an evaluate-all over thousands of orgs must not take the pool). */
export const SPEND_READ_CONCURRENCY = 4;

/**
 * Evaluates budgets against spend: picks windows, reads spend ({@link budgetSpends}: the org and
 * key budgets of every org and whole-day window in one statement, other reads at most
 * {@link SPEND_READ_CONCURRENCY} at a time) and compares it with the thresholds. A budget
 * that cannot be evaluated (a row the API would never have stored) is skipped, logged with its
 * id and counted; it never stops the evaluation of any other budget.
 */
@Injectable()
export class BudgetEvaluator {
  private readonly logger = new Logger(BudgetEvaluator.name);
  private readonly failures: Counter<string>;

  constructor(
    private readonly spend: UsageSpendService,
    metrics: MetricsService,
  ) {
    this.failures = metrics.counter('tally_budget_evaluation_failures_total', 'Budgets that could not be evaluated and were skipped');
  }

  /** Each budget in its current window; budgets that cannot be evaluated are left out. */
  evaluateCurrent(budgets: Budget[], now = new Date()): Promise<Evaluation[]> {
    const targets: EvaluationTarget[] = [];
    for (const budget of budgets) {
      const window = this.isolate(budget, () => currentWindow(budget, now));
      if (window) targets.push({ budget, window });
    }
    return this.evaluate(targets);
  }

  /** Evaluates each target (in order); targets that cannot be evaluated are left out. */
  async evaluate(targets: EvaluationTarget[]): Promise<Evaluation[]> {
    const spends = await budgetSpends(
      this.spend,
      targets.map(({ budget, window }) => ({ budget, start: window.start, end: window.end })),
      SPEND_READ_CONCURRENCY,
    );
    const evaluations: Evaluation[] = [];
    targets.forEach((target, i) => {
      const evaluation = this.isolate(target.budget, () => evaluateBudget(target.budget, spends[i], target.window));
      if (evaluation) evaluations.push(evaluation);
    });
    return evaluations;
  }

  /** Runs one budget's step; a throw skips the budget (logged with its id, counted). */
  isolate<T>(budget: Budget, step: () => T): T | undefined {
    try {
      return step();
    } catch (err) {
      this.failures.inc();
      this.logger.error({ msg: 'A budget cannot be evaluated; skipped', budgetId: budget.id, ...describeError(err) });
      return undefined;
    }
  }
}

import { Injectable, Logger } from '@nestjs/common';
import { Counter } from 'prom-client';
import { describeError } from '../common/error-mapping';
import { MetricsService } from '../metrics/metrics.service';
import { Spend, UsageSpendService } from '../usage/usage-spend.service';
import { Budget, BudgetScope } from './budget.entity';
import { displayScopeId } from './budget-scope';
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
 * Evaluates budgets against spend: picks windows, reads spend (one read per org and window, at
 * most {@link SPEND_READ_CONCURRENCY} at a time) and compares it with the thresholds. A budget
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
    const groups = new Map<string, { orgId: string; window: BudgetWindow; members: EvaluationTarget[] }>();
    for (const target of targets) {
      const key = `${target.budget.orgId}|${target.window.start.getTime()}|${target.window.end.getTime()}`;
      const group = groups.get(key);
      if (group) group.members.push(target);
      else groups.set(key, { orgId: target.budget.orgId, window: target.window, members: [target] });
    }
    const spends = new Map<EvaluationTarget, Spend>();
    await forEachLimited([...groups.values()], SPEND_READ_CONCURRENCY, async ({ orgId, window, members }) => {
      for (const m of members) spends.set(m, { costNano: 0n, tokens: 0n });
      const byKind = (scopes: BudgetScope[]) => members.filter((m) => scopes.includes(m.budget.scope));
      const keyed = byKind(['org', 'apikey']);
      if (keyed.length > 0) {
        const keys = keyed.some((m) => m.budget.scope === 'org') ? undefined : [...new Set(keyed.map((m) => m.budget.scopeId))];
        const { total, byKey } = await this.spend.spendByKey(orgId, window.start, window.end, keys);
        for (const m of keyed) spends.set(m, m.budget.scope === 'org' ? total : (byKey.get(m.budget.scopeId) ?? spends.get(m)!));
      }
      // Teams (the team_id records carry) and end users: one read each, grouped by the org-local id.
      for (const [scope, dimension] of [
        ['team', 'team_id'],
        ['user', 'user_id'],
      ] as const) {
        const local = byKind([scope]);
        if (local.length === 0) continue;
        const ids = [...new Set(local.map((m) => displayScopeId(m.budget)))];
        const { byValue } = await this.spend.spendByDimension(orgId, window.start, window.end, dimension, ids);
        for (const m of local) spends.set(m, byValue.get(displayScopeId(m.budget)) ?? spends.get(m)!);
      }
    });
    const evaluations: Evaluation[] = [];
    for (const target of targets) {
      const evaluation = this.isolate(target.budget, () => evaluateBudget(target.budget, spends.get(target)!, target.window));
      if (evaluation) evaluations.push(evaluation);
    }
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

/** Runs `work` over `items` with at most `limit` at once. */
export async function forEachLimited<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await work(items[next++]);
  });
  await Promise.all(lanes);
}

import { Injectable, Logger } from '@nestjs/common';
import { AlertQueuesService } from '../alerts/alert-queues.service';
import { AlertResolutionsService } from '../alerts/alert-resolutions.service';
import { Principal } from '../auth/principal';
import { Budget, BudgetScope } from '../budgets/budget.entity';
import { Evaluation } from '../budgets/budget-evaluation';
import { BudgetEvaluator } from '../budgets/budget-evaluator';
import { BudgetStateRefresher } from '../budgets/budget-state-refresher';
import { BudgetsService } from '../budgets/budgets.service';
import { SetBudgetDto } from '../budgets/dto/budget.dto';
import { describeError } from '../common/error-mapping';
import { AppException } from '../common/errors';
import { ReservationRedefinitions } from '../reservations/reservation-redefinitions';

/**
 * What setting or deleting a budget does, in order:
 * 1. store the change (PostgreSQL, the truth), with the live reservation holds of a budget whose
 *    counters now count something else moved to its new counters (ReservationRedefinitions);
 * 2. rewrite the block state of its scope, so a raised or deleted budget stops blocking at once
 *    (when Redis fails here, this process retries until it answers and the worker's repair pass
 *    rewrites every scope: the change is never lost);
 * 3. after a set, enqueue an evaluation of the scope, so a limit lowered below the spend alerts
 *    (when Redis fails, the worker's next evaluate-all does it);
 * 4. after a set, record a `budget.threshold.resolved` event for each crossed block threshold of
 *    the current window that no longer blocks (AlertResolutionsService).
 * A delete records the resolved events of its crossed block thresholds (a deleted budget blocks
 * nothing) in the same transaction as the delete, with a copy of the webhook target on every alert
 * still to deliver, and enqueues them after the commit: delivered, signed, logged and retried like
 * any alert, although the budget row is gone. The body's budget is the budget as it was, with its
 * spend at the deletion.
 */
@Injectable()
export class BudgetChangeWorkflow {
  private readonly logger = new Logger(BudgetChangeWorkflow.name);

  constructor(
    private readonly budgets: BudgetsService,
    private readonly refresher: BudgetStateRefresher,
    private readonly evaluator: BudgetEvaluator,
    private readonly queues: AlertQueuesService,
    private readonly resolutions: AlertResolutionsService,
    private readonly redefinitions: ReservationRedefinitions,
  ) {}

  async set(principal: Principal, scope: BudgetScope, scopeId: string, dto: SetBudgetDto): Promise<{ evaluation: Evaluation; generatedSecret?: string }> {
    const { budget, generatedSecret } = await this.budgets.set(principal, scope, scopeId, dto, this.redefinitions);
    const refreshed = await this.refresher.refreshOrRetry([{ scope, scopeId }]);
    try {
      await this.queues.evaluateScopes([{ scope, scopeId }]);
    } catch (err) {
      this.logger.warn({ msg: 'Could not enqueue a budget evaluation; the next evaluate-all will do it', budgetId: budget.id, ...describeError(err) });
    }
    const evaluation = refreshed?.find((e) => e.budget.id === budget.id) ?? (await this.evaluator.evaluateCurrent([budget]))[0];
    if (!evaluation) throw AppException.internal();
    try {
      await this.resolutions.recordResolutions(evaluation);
    } catch (err) {
      // The change is stored and its block state written: the PUT succeeds; the event is logged as lost.
      this.logger.error({ msg: 'Could not record budget.threshold.resolved events', budgetId: budget.id, ...describeError(err) });
    }
    return { evaluation, generatedSecret };
  }

  async delete(principal: Principal, id: string): Promise<Budget> {
    const now = new Date();
    const { budget, result: toDeliver } = await this.budgets.delete(principal, id, async (manager, locked) => {
      let evaluation: Evaluation | null = null;
      try {
        evaluation = (await this.evaluator.evaluateCurrent([locked], now))[0] ?? null;
      } catch (err) {
        // As after a set: the delete goes ahead; the resolved events it implied are logged as lost.
        this.logger.error({ msg: 'Could not evaluate the deleted budget; its budget.threshold.resolved events are lost', budgetId: id, ...describeError(err) });
      }
      return this.resolutions.recordDeletion(manager, locked, evaluation, now);
    });
    await this.refresher.refreshOrRetry([{ scope: budget.scope, scopeId: budget.scopeId }]);
    await this.resolutions.deliver(toDeliver);
    return budget;
  }
}

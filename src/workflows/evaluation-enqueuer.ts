import { Injectable, Logger } from '@nestjs/common';
import { EvaluateScopePayload } from '../alerts/alert-jobs';
import { AlertQueuesService } from '../alerts/alert-queues.service';
import { EvaluationBacklog } from '../alerts/evaluation-backlog';
import { describeError } from '../common/error-mapping';
import type { UsageTouched } from '../usage/usage-ingest.service';

/**
 * Step 5 of the ingest workflow: one evaluation per scope and UTC day of the records, from the
 * budgets the workflow read once, in one Redis round trip. What cannot be enqueued (Redis down)
 * goes to the PostgreSQL backlog that the worker's evaluate-all drains, and so do days before
 * today in any case. (Merging them across
 * concurrent ingests and enqueueing after the answer was tried; it made test/budget-block-state's
 * app close hang and was left out for now.)
 */
const utcDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

@Injectable()
export class EvaluationEnqueuer {
  private readonly logger = new Logger(EvaluationEnqueuer.name);

  constructor(
    private readonly queues: AlertQueuesService,
    private readonly backlog: EvaluationBacklog,
  ) {}

  /** Enqueues an evaluation of each scope in each of the days; what cannot be enqueued goes to the backlog. */
  async add(scopes: Array<{ scope: EvaluateScopePayload['scope']; scopeId: string }>, touched: UsageTouched): Promise<void> {
    const payloads = new Map<string, EvaluateScopePayload>();
    for (const { scope, scopeId } of scopes) {
      for (const day of touched.days) payloads.set(`${scope}:${scopeId}:${day}`, { scope, scopeId, day });
    }
    try {
      await this.queues.evaluatePayloads([...payloads.values()]);
    } catch (err) {
      this.logger.warn({ msg: 'Could not enqueue budget evaluations after ingest; kept for evaluate-all', orgId: touched.orgId, ...describeError(err) });
      await this.keep(touched);
      return;
    }
    // A day before today (UTC) may be in no current or previous daily window of a budget, which are
    // all evaluate-all looks at (the day before yesterday in UTC; yesterday's first hours in a zone
    // ahead of UTC): a job for it lost with Redis' data (FLUSHDB, a restart) would lose its
    // crossings for good. Kept in PostgreSQL as well (evaluate-all runs them once more; alerts are
    // recorded once whoever finds them). Records of past days are few: this costs them a row.
    const lateDays = touched.days.filter((day) => day < utcDay(Date.now()));
    if (lateDays.length > 0) await this.keep({ ...touched, days: lateDays });
  }

  /** Keeps the evaluations in PostgreSQL; the worker's evaluate-all runs them once Redis is back. */
  async keep(touched: UsageTouched): Promise<void> {
    await this.backlog.add(touched).catch((err: unknown) =>
      this.logger.error({ msg: 'Could not keep the evaluations of an ingest', orgId: touched.orgId, ...describeError(err) }),
    );
  }
}

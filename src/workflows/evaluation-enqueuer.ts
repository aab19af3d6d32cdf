import { BeforeApplicationShutdown, Injectable, Logger } from '@nestjs/common';
import { EvaluateScopePayload } from '../alerts/alert-jobs';
import { AlertQueuesService } from '../alerts/alert-queues.service';
import { EvaluationBacklog } from '../alerts/evaluation-backlog';
import { describeError } from '../common/error-mapping';
import type { UsageTouched } from '../usage/usage-ingest.service';

/**
 * Step 5 of the ingest workflow, off the request path: the evaluations ingests ask for are merged
 * per scope and day while one enqueue is in flight, then sent in one round trip (BullMQ
 * deduplicates an evaluation per scope and day anyway, so merging them first changes nothing but
 * the Redis work). Alerts are asynchronous; the block state, which the check reads, is written
 * before the ingest answers. What cannot be enqueued (Redis down) goes to the PostgreSQL backlog
 * that the worker's evaluate-all drains; the process waits for the last enqueue on shutdown.
 */
@Injectable()
export class EvaluationEnqueuer implements BeforeApplicationShutdown {
  private readonly logger = new Logger(EvaluationEnqueuer.name);
  private pending = new Map<string, EvaluateScopePayload>();
  private touched: UsageTouched[] = [];
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly queues: AlertQueuesService,
    private readonly backlog: EvaluationBacklog,
  ) {}

  /** Asks for an evaluation of each scope in each of the days; returns at once. */
  add(scopes: Array<{ scope: EvaluateScopePayload['scope']; scopeId: string }>, touched: UsageTouched): void {
    for (const { scope, scopeId } of scopes) {
      for (const day of touched.days) this.pending.set(`${scope}:${scopeId}:${day}`, { scope, scopeId, day });
    }
    this.touched.push(touched);
    if (!this.flushing) this.flushing = this.flush().finally(() => (this.flushing = undefined));
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.flushing;
  }

  private async flush(): Promise<void> {
    // Let the requests that finish in this tick join the first round trip.
    await new Promise((resolve) => setImmediate(resolve));
    while (this.pending.size > 0) {
      const payloads = [...this.pending.values()];
      const touched = this.touched;
      this.pending = new Map();
      this.touched = [];
      try {
        await this.queues.evaluatePayloads(payloads);
      } catch (err) {
        this.logger.warn({ msg: 'Could not enqueue budget evaluations after ingest; kept for evaluate-all', batches: touched.length, ...describeError(err) });
        await Promise.all(touched.map((t) => this.keep(t)));
      }
    }
  }

  /** Keeps the evaluations in PostgreSQL; the worker's evaluate-all runs them once Redis is back. */
  async keep(touched: UsageTouched): Promise<void> {
    await this.backlog.add(touched).catch((err: unknown) =>
      this.logger.error({ msg: 'Could not keep the evaluations of an ingest', orgId: touched.orgId, ...describeError(err) }),
    );
  }
}

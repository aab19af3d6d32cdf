import { OnWorkerEvent, Processor, WorkerHost } from '@nestjs/bullmq';
import { DelayedError, Job } from 'bullmq';
import { JobFailures } from '../metrics/job-failures';
import { QueueErrors } from '../metrics/queue-errors';
import { AlertEvaluatorService } from './alert-evaluator.service';
import { AlertQueue, DeliverJob, DeliverPayloads, EvaluateJob, EvaluatePayloads } from './alert-jobs';
import { jobDispatcher } from './job-dispatch';
import { DeliverySlots } from './delivery-slots';
import { webhookBackoffStrategy } from './webhook-backoff';
import { DeliveryAttempt, WebhookDeliveryService } from './webhook-delivery.service';

/** Budget evaluations: the scheduled evaluate-all and per-scope evaluations after ingest or a budget change. */
@Processor(AlertQueue.Evaluate, { concurrency: 4 })
export class EvaluateProcessor extends WorkerHost {
  private readonly dispatch = jobDispatcher<EvaluatePayloads>(AlertQueue.Evaluate, EvaluateJob, {
    // A scheduled run while another still runs (another worker, a slow run) does nothing.
    [EvaluateJob.All]: () => this.evaluator.evaluateAll({ waitMs: 0 }),
    [EvaluateJob.Scope]: (job) => this.evaluator.evaluateScope(job.data.scope, job.data.scopeId, job.data.day),
  });

  constructor(
    private readonly evaluator: AlertEvaluatorService,
    private readonly failures: JobFailures,
    private readonly errors: QueueErrors,
  ) {
    super();
  }

  process(job: Job): Promise<unknown> {
    return this.dispatch(job);
  }

  @OnWorkerEvent('failed')
  onFailed(job: Job | undefined, err: Error): void {
    this.failures.report(AlertQueue.Evaluate, job, err);
  }

  @OnWorkerEvent('error')
  onError(err: Error): void {
    this.errors.report(AlertQueue.Evaluate, 'worker', err);
  }
}

/**
 * Webhook deliveries: one attempt per run; failures throw so BullMQ retries with the webhook
 * backoff. Deliveries are network waits, so a worker runs many at once; no org gets more than
 * WEBHOOK_ORG_CONCURRENCY of them (DeliverySlots): a job whose org has none free goes back to
 * the delayed set for a moment without using up an attempt, and the slot serves another org.
 */
@Processor(AlertQueue.Deliver, { concurrency: 32, settings: { backoffStrategy: webhookBackoffStrategy } })
export class DeliverProcessor extends WorkerHost {
  private readonly dispatch = jobDispatcher<DeliverPayloads>(AlertQueue.Deliver, DeliverJob, {
    [DeliverJob.Deliver]: (job) => this.delivery.attempt({ ...attemptOf(job), trigger: 'alert', alertId: job.data.alertId }),
    [DeliverJob.Redeliver]: (job) =>
      this.delivery.attempt({ ...attemptOf(job), trigger: 'redelivery', alertId: job.data.alertId, pendingDeliveryId: job.data.deliveryId }),
  });

  constructor(
    private readonly delivery: WebhookDeliveryService,
    private readonly slots: DeliverySlots,
    private readonly failures: JobFailures,
    private readonly errors: QueueErrors,
  ) {
    super();
  }

  async process(job: Job, token?: string): Promise<unknown> {
    const outcome = await this.dispatch(job);
    if (outcome !== 'deferred') return undefined;
    // Never complete a deferred job: without a lock token to move it, fail the run so it is retried.
    if (!token) throw new Error("no delivery slot free for the alert's org");
    await job.moveToDelayed(Date.now() + this.slots.deferMs(), token);
    throw new DelayedError();
  }

  @OnWorkerEvent('failed')
  onFailed(job: Job | undefined, err: Error): void {
    this.failures.report(AlertQueue.Deliver, job, err);
  }

  @OnWorkerEvent('error')
  onError(err: Error): void {
    this.errors.report(AlertQueue.Deliver, 'worker', err);
  }
}

function attemptOf(job: Job): Pick<DeliveryAttempt, 'attempt' | 'maxAttempts' | 'jobId' | 'retryBaseMs'> {
  const backoff = job.opts.backoff;
  return {
    attempt: job.attemptsMade + 1,
    maxAttempts: job.opts.attempts ?? 1,
    jobId: job.id ?? '',
    retryBaseMs: typeof backoff === 'object' && backoff.delay !== undefined ? backoff.delay : 0,
  };
}

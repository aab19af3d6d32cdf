import { Processor, WorkerHost } from '@nestjs/bullmq';
import { Job } from 'bullmq';
import { AlertEvaluatorService } from './alert-evaluator.service';
import { AlertQueue, DeliverJob, DeliverPayloads, EvaluateJob, EvaluatePayloads } from './alert-jobs';
import { jobDispatcher } from './job-dispatch';
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

  constructor(private readonly evaluator: AlertEvaluatorService) {
    super();
  }

  process(job: Job): Promise<unknown> {
    return this.dispatch(job);
  }
}

/** Webhook deliveries: one attempt per run; failures throw so BullMQ retries with the webhook backoff. */
@Processor(AlertQueue.Deliver, { concurrency: 16, settings: { backoffStrategy: webhookBackoffStrategy } })
export class DeliverProcessor extends WorkerHost {
  private readonly dispatch = jobDispatcher<DeliverPayloads>(AlertQueue.Deliver, DeliverJob, {
    [DeliverJob.Deliver]: (job) => this.delivery.attempt({ ...attemptOf(job), trigger: 'alert', alertId: job.data.alertId }),
    [DeliverJob.Redeliver]: (job) =>
      this.delivery.attempt({ ...attemptOf(job), trigger: 'redelivery', alertId: job.data.alertId, pendingDeliveryId: job.data.deliveryId }),
  });

  constructor(private readonly delivery: WebhookDeliveryService) {
    super();
  }

  process(job: Job): Promise<unknown> {
    return this.dispatch(job);
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

import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Queue } from 'bullmq';
import { DataSource } from 'typeorm';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import {
  AlertQueue,
  deliverJobId,
  DeliverJob,
  deliveryJobOptions,
  EVALUATE_ALL_SCHEDULER_ID,
  EvaluateJob,
  EvaluateScopePayload,
  evaluateScopeOptions,
  RedeliverPayload,
  redeliverJobId,
  redeliveryJobOptions,
} from './alert-jobs';

/** Enqueues alert jobs. Every process may enqueue; only workers process (AlertsWorkerModule). */
@Injectable()
export class AlertQueuesService {
  constructor(
    @InjectQueue(AlertQueue.Evaluate) private readonly evaluate: Queue,
    @InjectQueue(AlertQueue.Deliver) private readonly deliver: Queue,
    @InjectDataSource() private readonly dataSource: DataSource,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** Both queues, for the queue-depth metric. */
  all(): Queue[] {
    return [this.evaluate, this.deliver];
  }

  /** Registers (or updates) the periodic evaluate-all job; idempotent across workers. */
  async scheduleEvaluateAll(): Promise<void> {
    await this.evaluate.upsertJobScheduler(
      EVALUATE_ALL_SCHEDULER_ID,
      { every: this.config.alertEvaluationIntervalMs },
      { name: EvaluateJob.All, data: {}, opts: { removeOnComplete: true, removeOnFail: { count: 100 } } },
    );
  }

  /** One deduplicated evaluation per scope. */
  async evaluateScopes(scopes: EvaluateScopePayload[]): Promise<void> {
    if (scopes.length === 0) return;
    await this.evaluate.addBulk(scopes.map((data) => ({ name: EvaluateJob.Scope, data, opts: evaluateScopeOptions(data) })));
  }

  /** After ingest: evaluations of the org and of the keys that have budgets (one indexed query, then one Redis round trip). */
  async evaluateUsage(orgId: string, apiKeyIds: string[]): Promise<void> {
    const scopes: EvaluateScopePayload[] = (
      await this.dataSource.query(
        `SELECT DISTINCT scope, scope_id FROM budgets WHERE (scope = 'org' AND scope_id = $1) OR (scope = 'apikey' AND scope_id = ANY($2))`,
        [orgId, apiKeyIds],
      )
    ).map((row: { scope: EvaluateScopePayload['scope']; scope_id: string }) => ({ scope: row.scope, scopeId: row.scope_id }));
    await this.evaluateScopes(scopes);
  }

  /** Delivery jobs of new alerts, by deterministic id: enqueueing an alert twice is a no-op. */
  async deliverAlerts(alertIds: string[]): Promise<void> {
    if (alertIds.length === 0) return;
    await this.deliver.addBulk(
      alertIds.map((alertId) => ({
        name: DeliverJob.Deliver,
        data: { alertId },
        opts: deliveryJobOptions(deliverJobId(alertId), this.config.webhookMaxAttempts, this.config.webhookRetryBaseMs),
      })),
    );
  }

  /** The pending delivery row of the alert's redelivery that is queued, running or retrying; undefined when none is. */
  async redeliveryInFlight(alertId: string): Promise<string | undefined> {
    const job = await this.deliver.getJob(redeliverJobId(alertId));
    return (job?.data as RedeliverPayload | undefined)?.deliveryId;
  }

  /**
   * Queues a redelivery unless one of the same alert is in flight (one job id per alert: adding
   * an existing id is a no-op in BullMQ). Answers the in-flight redelivery's pending row id:
   * `payload.deliveryId` when this one was queued, another when a concurrent request won, and
   * undefined when the job already ran and was removed.
   */
  async redeliver(payload: RedeliverPayload): Promise<string | undefined> {
    await this.deliver.add(
      DeliverJob.Redeliver,
      payload,
      redeliveryJobOptions(payload.alertId, this.config.webhookMaxAttempts, this.config.webhookRetryBaseMs),
    );
    return this.redeliveryInFlight(payload.alertId);
  }
}

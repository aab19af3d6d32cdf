import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Queue } from 'bullmq';
import Redis from 'ioredis';
import { DataSource } from 'typeorm';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import { withLateTimeout } from '../common/late-timer';
import { QueueErrors } from '../metrics/queue-errors';
import { REDIS } from '../redis/redis.module';
import { guardRedis, RedisUnavailableError } from '../redis/redis-unavailable';
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

/** An enqueue that does not answer by then (Redis hung) is given up; its caller repairs. */
const ENQUEUE_TIMEOUT_MS = 1000;

/**
 * Enqueues alert jobs. Every process may enqueue; only workers process (AlertsWorkerModule).
 * BullMQ's own connections wait for Redis forever (its workers need that), so every enqueue here
 * fails at once while Redis is down and gives up after {@link ENQUEUE_TIMEOUT_MS}: callers on a
 * request path record what they could not enqueue instead of waiting.
 */
@Injectable()
export class AlertQueuesService {
  constructor(
    @InjectQueue(AlertQueue.Evaluate) private readonly evaluate: Queue,
    @InjectQueue(AlertQueue.Deliver) private readonly deliver: Queue,
    @InjectDataSource() private readonly dataSource: DataSource,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(REDIS) private readonly redis: Redis,
    errors: QueueErrors,
  ) {
    for (const queue of this.all()) errors.watch(queue, queue.name, 'queue');
  }

  /** Re-registers the evaluate-all scheduler when it is gone (Redis flushed or restarted empty). */
  async ensureScheduler(): Promise<boolean> {
    if (await this.fast(() => this.evaluate.getJobScheduler(EVALUATE_ALL_SCHEDULER_ID))) return false;
    await this.scheduleEvaluateAll();
    return true;
  }

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
    await this.fast(() => this.evaluate.addBulk(scopes.map((data) => ({ name: EvaluateJob.Scope, data, opts: evaluateScopeOptions(data) }))));
  }

  /** Evaluations merged by the ingest workflow (one per scope and day): one Redis round trip; fails at once while Redis is down. */
  async evaluatePayloads(payloads: EvaluateScopePayload[]): Promise<void> {
    if (this.redis.status !== 'ready') throw new RedisUnavailableError();
    await this.evaluateScopes(payloads);
  }

  /** Delivery jobs of new alerts, by deterministic id: enqueueing an alert twice is a no-op. */
  async deliverAlerts(alertIds: string[]): Promise<void> {
    if (alertIds.length === 0) return;
    await this.fast(() => this.deliver.addBulk(
      alertIds.map((alertId) => ({
        name: DeliverJob.Deliver,
        data: { alertId },
        opts: deliveryJobOptions(deliverJobId(alertId), this.config.webhookMaxAttempts, this.config.webhookRetryBaseMs),
      })),
    ));
  }

  /** The pending delivery row of the alert's redelivery that is queued, running or retrying; undefined when none is. */
  async redeliveryInFlight(alertId: string): Promise<string | undefined> {
    const job = await this.fast(() => this.deliver.getJob(redeliverJobId(alertId)));
    return (job?.data as RedeliverPayload | undefined)?.deliveryId;
  }

  /**
   * Queues a redelivery unless one of the same alert is in flight (one job id per alert: adding
   * an existing id is a no-op in BullMQ). Answers the in-flight redelivery's pending row id:
   * `payload.deliveryId` when this one was queued, another when a concurrent request won, and
   * undefined when the job already ran and was removed.
   */
  async redeliver(payload: RedeliverPayload): Promise<string | undefined> {
    await this.fast(() =>
      this.deliver.add(DeliverJob.Redeliver, payload, redeliveryJobOptions(payload.alertId, this.config.webhookMaxAttempts, this.config.webhookRetryBaseMs)),
    );
    return this.redeliveryInFlight(payload.alertId);
  }

  /** Fails at once while Redis is down, and after ENQUEUE_TIMEOUT_MS when it does not answer. */
  private fast<T>(start: () => Promise<T>): Promise<T> {
    // The shared client's health stands for Redis' (BullMQ's connections would wait).
    return guardRedis(this.redis, async () => {
      // Given up here, BullMQ still sends it once Redis answers: job ids and deduplication make that harmless.
      return withLateTimeout(start(), ENQUEUE_TIMEOUT_MS, () => new Error('Command timed out (enqueue)'));
    });
  }
}

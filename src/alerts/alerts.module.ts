import { BullModule } from '@nestjs/bullmq';
import { BeforeApplicationShutdown, Logger, Module, OnApplicationBootstrap, OnModuleInit } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { Budget } from '../budgets/budget.entity';
import { BudgetsModule } from '../budgets/budgets.module';
import { BudgetsService } from '../budgets/budgets.service';
import { BudgetGauges } from '../budgets/budget-gauges';
import { describeError } from '../common/error-mapping';
import { JobFailures } from '../metrics/job-failures';
import { MetricsService } from '../metrics/metrics.service';
import { UsageModule } from '../usage/usage.module';
import { UsageIngestService } from '../usage/usage-ingest.service';
import { AlertEvaluatorService } from './alert-evaluator.service';
import { AlertQueue } from './alert-jobs';
import { DeliverProcessor, EvaluateProcessor } from './alert-processors';
import { AlertQueuesService } from './alert-queues.service';
import { Alert } from './alert.entity';
import { DeliveriesController } from './deliveries.controller';
import { DeliveryLogService } from './delivery-log.service';
import { DeliverySlots } from './delivery-slots';
import { WebhookDeliveryService } from './webhook-delivery.service';
import { WebhookDelivery } from './webhook-delivery.entity';

/** Enqueueing must never hold up an ingest or a budget PUT: past this, the periodic evaluation catches up. */
const ENQUEUE_TIMEOUT_MS = 2000;

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Threshold alerts: the services and queues, in every process. Ingest that touches a budgeted
 * scope, and every budget change, enqueue a deduplicated evaluation (processes that serve the API
 * only enqueue); the jobs run in {@link AlertsWorkerModule}, the HTTP side is {@link AlertsApiModule}.
 */
@Module({
  imports: [
    TypeOrmModule.forFeature([Budget, Alert, WebhookDelivery]),
    BullModule.registerQueue({ name: AlertQueue.Evaluate }, { name: AlertQueue.Deliver }),
    BudgetsModule,
    UsageModule,
  ],
  providers: [AlertQueuesService, AlertEvaluatorService, WebhookDeliveryService, DeliveryLogService, DeliverySlots],
  exports: [AlertQueuesService, AlertEvaluatorService, WebhookDeliveryService, DeliveryLogService, DeliverySlots],
})
export class AlertsModule implements OnModuleInit {
  private readonly logger = new Logger('Alerts');

  constructor(
    private readonly queues: AlertQueuesService,
    private readonly ingest: UsageIngestService,
    private readonly budgets: BudgetsService,
  ) {}

  onModuleInit(): void {
    this.ingest.onIngested((event) => this.enqueue('ingest', () => this.queues.evaluateUsage(event.orgId, event.apiKeyIds)));
    this.budgets.onChanged(async (budget, change) => {
      if (change === 'set') await this.enqueue('budget change', () => this.queues.evaluateScopes([{ scope: budget.scope, scopeId: budget.scopeId }]));
    });
  }

  private async enqueue(cause: string, work: () => Promise<void>): Promise<void> {
    try {
      await withTimeout(work(), ENQUEUE_TIMEOUT_MS);
    } catch (err) {
      this.logger.warn({ msg: 'Could not enqueue a budget evaluation; the periodic one will catch up', cause, ...describeError(err) });
    }
  }
}

/** The alert job processors: loaded only by processes that run the worker (PROCESS_ROLE all or worker). */
@Module({ imports: [AlertsModule, BudgetsModule], providers: [EvaluateProcessor, DeliverProcessor, BudgetGauges] })
export class AlertsWorkerModule implements OnApplicationBootstrap, BeforeApplicationShutdown {
  constructor(
    private readonly queues: AlertQueuesService,
    private readonly evaluate: EvaluateProcessor,
    private readonly deliver: DeliverProcessor,
    private readonly metrics: MetricsService,
    private readonly failures: JobFailures,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    // Queue depths and failed jobs of the queues this process works on, on every scrape.
    this.metrics.watchQueues(this.queues.all());
    this.failures.watch(this.queues.all().map((queue) => queue.name));
    await this.queues.scheduleEvaluateAll();
  }

  /** Stops taking jobs and waits for the running ones, while the database and Redis are still open. */
  async beforeApplicationShutdown(): Promise<void> {
    await Promise.all([this.evaluate.worker.close(), this.deliver.worker.close()]);
  }
}

@Module({ imports: [AlertsModule], controllers: [DeliveriesController] })
export class AlertsApiModule {}

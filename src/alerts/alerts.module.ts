import { BullModule } from '@nestjs/bullmq';
import { BeforeApplicationShutdown, Inject, Logger, Module, OnApplicationBootstrap, Provider } from '@nestjs/common';
import { getDataSourceToken, getRepositoryToken, TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { BudgetEvaluator } from '../budgets/budget-evaluator';
import { BudgetStateRefresher } from '../budgets/budget-state-refresher';
import { BudgetRepository } from '../budgets/budget.repository';
import { WORKER_DATA_SOURCE } from '../database/data-source';
import { UsageSpendService } from '../usage/usage-spend.service';
import { Budget } from '../budgets/budget.entity';
import { BudgetsModule } from '../budgets/budgets.module';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import { BudgetGauges } from '../budgets/budget-gauges';
import { JobFailures } from '../metrics/job-failures';
import { MetricsService } from '../metrics/metrics.service';
import { UsageModule } from '../usage/usage.module';
import { AlertEvaluatorService } from './alert-evaluator.service';
import { AlertResolutionsService } from './alert-resolutions.service';
import { AlertQueue } from './alert-jobs';
import { DeliverProcessor, EvaluateProcessor } from './alert-processors';
import { AlertQueuesService } from './alert-queues.service';
import { Alert } from './alert.entity';
import { DeliveriesController } from './deliveries.controller';
import { DeliveryLogService } from './delivery-log.service';
import { EvaluationBacklog } from './evaluation-backlog';
import { EvaluationRequest } from './evaluation-request.entity';
import { DeliverySlots } from './delivery-slots';
import { WebhookDeliveryService } from './webhook-delivery.service';
import { WebhookDelivery } from './webhook-delivery.entity';

/**
 * Threshold alerts: the services and queues, in every process. What an ingest or a budget change
 * triggers is in the workflows (src/workflows); the jobs run in {@link AlertsWorkerModule}, the
 * HTTP side is {@link AlertsApiModule}.
 */
@Module({
  imports: [
    TypeOrmModule.forFeature([Budget, Alert, WebhookDelivery, EvaluationRequest]),
    BullModule.registerQueue({ name: AlertQueue.Evaluate }, { name: AlertQueue.Deliver }),
    BudgetsModule,
    UsageModule,
  ],
  providers: [AlertQueuesService, AlertEvaluatorService, AlertResolutionsService, WebhookDeliveryService, DeliveryLogService, DeliverySlots, EvaluationBacklog],
  exports: [AlertQueuesService, AlertEvaluatorService, AlertResolutionsService, WebhookDeliveryService, DeliveryLogService, DeliverySlots, EvaluationBacklog],
})
export class AlertsModule {}

/**
 * The services the jobs use, again, in this module: here the data source and repositories are
 * the worker's own pool (WORKER_DATABASE_POOL_SIZE), so jobs never take the API's connections,
 * nor the API the jobs', also in a process that runs both.
 */
const ON_WORKER_POOL: Provider[] = [
  { provide: getDataSourceToken(), useExisting: getDataSourceToken(WORKER_DATA_SOURCE) },
  ...[Alert, Budget, WebhookDelivery].map((entity) => ({
    provide: getRepositoryToken(entity),
    useFactory: (dataSource: DataSource) => dataSource.getRepository(entity),
    inject: [getDataSourceToken(WORKER_DATA_SOURCE)],
  })),
  UsageSpendService,
  BudgetRepository,
  BudgetEvaluator,
  BudgetStateRefresher,
  EvaluationBacklog,
  AlertEvaluatorService,
  WebhookDeliveryService,
];

/** The alert job processors: loaded only by processes that run the worker (PROCESS_ROLE all or worker). */
@Module({ imports: [AlertsModule, BudgetsModule], providers: [...ON_WORKER_POOL, EvaluateProcessor, DeliverProcessor, BudgetGauges] })
export class AlertsWorkerModule implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('AlertsWorker');
  private watchdog: NodeJS.Timeout | undefined;

  constructor(
    private readonly queues: AlertQueuesService,
    private readonly evaluate: EvaluateProcessor,
    private readonly deliver: DeliverProcessor,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly metrics: MetricsService,
    private readonly failures: JobFailures,
  ) {}

  /**
   * Registers the evaluate-all scheduler, and checks every interval that it is still there: after
   * Redis lost its data (FLUSHDB, a restart without persistence) it is back within one interval,
   * and its first run rebuilds block states and re-enqueues undelivered alerts.
   */
  async onApplicationBootstrap(): Promise<void> {
    // Queue depths and failed jobs of the queues this process works on, on every scrape.
    this.metrics.watchQueues(this.queues.all());
    this.failures.watch(this.queues.all().map((queue) => queue.name));
    await this.queues.scheduleEvaluateAll();
    this.watchdog = setInterval(() => {
      this.queues.ensureScheduler().then(
        (restored) => {
          if (restored) this.logger.warn('The evaluate-all scheduler was gone from Redis; registered it again');
        },
        () => undefined, // Redis down: the next tick tries again
      );
    }, this.config.alertEvaluationIntervalMs);
    this.watchdog.unref();
  }

  /** Stops taking jobs and waits for the running ones, while the database and Redis are still open. */
  async beforeApplicationShutdown(): Promise<void> {
    clearInterval(this.watchdog);
    await Promise.all([this.evaluate.worker.close(), this.deliver.worker.close()]);
  }
}

@Module({ imports: [AlertsModule], controllers: [DeliveriesController] })
export class AlertsApiModule {}

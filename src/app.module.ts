import { BullModule } from '@nestjs/bullmq';
import { DynamicModule, Module, OnApplicationShutdown } from '@nestjs/common';
import Redis, { Cluster } from 'ioredis';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AlertsApiModule, AlertsModule, AlertsWorkerModule } from './alerts/alerts.module';
import { AuthModule } from './auth/auth.module';
import { BudgetsApiModule } from './budgets/budgets-api.module';
import { BudgetsModule } from './budgets/budgets.module';
import { AppConfig } from './config/app-config';
import { ConfigModule } from './config/config.module';
import { dataSourceOptions, WORKER_DATA_SOURCE } from './database/data-source';
import { HealthModule } from './health/health.module';
import { MetricsModule } from './metrics/metrics.module';
import { WorkerMetricsModule } from './metrics/worker-metrics.server';
import { createRedisClient, deploymentPrefix, redisOptions } from './redis/redis';
import { RedisModule } from './redis/redis.module';
import { ReservationsApiModule, ReservationsModule, ReservationsWorkerModule } from './reservations/reservations.module';
import { UsageApiModule } from './usage/usage-api.module';
import { UsageModule } from './usage/usage.module';
import { UsageWorkerModule } from './usage/usage-worker.module';
import { WorkflowsModule } from './workflows/workflows.module';

/** Which halves of the product a process runs (PROCESS_ROLE). */
export interface ProcessParts {
  api: boolean;
  worker: boolean;
}

export function processParts(config: AppConfig): ProcessParts {
  return { api: config.processRole !== 'worker', worker: config.processRole !== 'api' };
}

/** Closes a Redis client at shutdown, after the queues' workers have stopped. */
class ClientCloser implements OnApplicationShutdown {
  constructor(private readonly client: Redis | Cluster) {}
  async onApplicationShutdown(): Promise<void> {
    await this.client.quit().catch(() => this.client.disconnect());
  }
}

/** Connections of the default pool in a worker-only process (start-up, auth caches): its jobs use their own pool. */
const WORKER_PROCESS_DEFAULT_POOL = 2;

/**
 * PostgreSQL pools of a process, one per half: the API's (`DATABASE_POOL_SIZE`) and the worker's
 * (`WORKER_DATABASE_POOL_SIZE`, the data source named {@link WORKER_DATA_SOURCE}, used by every job),
 * so neither half can take the other's connections, also when one process runs both.
 */
function dataSources(config: AppConfig, url: string): DynamicModule[] {
  const parts = processParts(config);
  const modules = [TypeOrmModule.forRoot(dataSourceOptions(url, {}, parts.api ? config.databasePoolSize : WORKER_PROCESS_DEFAULT_POOL))];
  if (parts.worker) {
    modules.push(TypeOrmModule.forRoot({ ...dataSourceOptions(url, {}, config.workerDatabasePoolSize, 'tally-worker'), name: WORKER_DATA_SOURCE }));
  }
  return modules;
}

/** Composition root: the same modules for every role; HTTP controllers and job processors by role. */
@Module({})
export class AppModule {
  static forRoot(config: AppConfig): DynamicModule {
    if (!config.databaseUrl) throw new Error('AppModule needs a database URL (start-up fills it in)');
    const parts = processParts(config);
    // On a cluster BullMQ takes a client instance, which it then does not close: the module does.
    const bullCluster = config.redisClusterNodes ? createRedisClient(config, { maxRetriesPerRequest: null }) : undefined;
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        ...dataSources(config, config.databaseUrl),
        RedisModule,
        MetricsModule,
        BullModule.forRoot({
          connection: bullCluster ?? { ...(redisOptions(config.redisUrl, { maxRetriesPerRequest: null }) as Record<string, unknown>) },
          // A hash tag on a cluster: each queue's keys (and its Lua scripts) stay in one slot.
          prefix: deploymentPrefix(config),
        }),
        AuthModule,
        UsageModule,
        BudgetsModule,
        AlertsModule,
        ReservationsModule,
        WorkflowsModule,
        ...(parts.api ? [HealthModule, UsageApiModule, BudgetsApiModule, AlertsApiModule, ReservationsApiModule] : []),
        ...(parts.worker ? [AlertsWorkerModule, UsageWorkerModule, WorkerMetricsModule, ReservationsWorkerModule] : []),
      ],
      providers: bullCluster ? [{ provide: ClientCloser, useFactory: () => new ClientCloser(bullCluster) }] : [],
    };
  }
}

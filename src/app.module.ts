import { BullModule } from '@nestjs/bullmq';
import { DynamicModule, Module, OnApplicationShutdown } from '@nestjs/common';
import Redis, { Cluster } from 'ioredis';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AlertsApiModule, AlertsModule, AlertsWorkerModule } from './alerts/alerts.module';
import { AuthModule } from './auth/auth.module';
import { BudgetsApiModule, BudgetsModule } from './budgets/budgets.module';
import { AppConfig } from './config/app-config';
import { ConfigModule } from './config/config.module';
import { dataSourceOptions } from './database/data-source';
import { HealthModule } from './health/health.module';
import { MetricsModule } from './metrics/metrics.module';
import { WorkerMetricsModule } from './metrics/worker-metrics.server';
import { createRedisClient, deploymentPrefix, redisOptions } from './redis/redis';
import { RedisModule } from './redis/redis.module';
import { UsageApiModule, UsageModule, UsageWorkerModule } from './usage/usage.module';

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
        TypeOrmModule.forRoot(dataSourceOptions(config.databaseUrl)),
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
        ...(parts.api ? [HealthModule, UsageApiModule, BudgetsApiModule, AlertsApiModule] : []),
        ...(parts.worker ? [AlertsWorkerModule, UsageWorkerModule, WorkerMetricsModule] : []),
      ],
      providers: bullCluster ? [{ provide: ClientCloser, useFactory: () => new ClientCloser(bullCluster) }] : [],
    };
  }
}

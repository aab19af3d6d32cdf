import { BullModule } from '@nestjs/bullmq';
import { DynamicModule, Module } from '@nestjs/common';
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
import { redisOptions } from './redis/redis';
import { RedisModule } from './redis/redis.module';
import { ReservationsApiModule, ReservationsModule, ReservationsWorkerModule } from './reservations/reservations.module';
import { UsageApiModule, UsageModule } from './usage/usage.module';

/** Which halves of the product a process runs (PROCESS_ROLE). */
export interface ProcessParts {
  api: boolean;
  worker: boolean;
}

export function processParts(config: AppConfig): ProcessParts {
  return { api: config.processRole !== 'worker', worker: config.processRole !== 'api' };
}

/** Composition root: the same modules for every role; HTTP controllers and job processors by role. */
@Module({})
export class AppModule {
  static forRoot(config: AppConfig): DynamicModule {
    if (!config.databaseUrl) throw new Error('AppModule needs a database URL (start-up fills it in)');
    const parts = processParts(config);
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        TypeOrmModule.forRoot(dataSourceOptions(config.databaseUrl)),
        RedisModule,
        MetricsModule,
        BullModule.forRoot({
          connection: { ...(redisOptions(config.redisUrl, { maxRetriesPerRequest: null }) as Record<string, unknown>) },
          prefix: config.redisPrefix,
        }),
        AuthModule,
        UsageModule,
        BudgetsModule,
        AlertsModule,
        ReservationsModule,
        ...(parts.api ? [HealthModule, UsageApiModule, BudgetsApiModule, AlertsApiModule, ReservationsApiModule] : []),
        ...(parts.worker ? [AlertsWorkerModule, WorkerMetricsModule, ReservationsWorkerModule] : []),
      ],
    };
  }
}

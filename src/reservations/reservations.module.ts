import { Module, OnApplicationBootstrap, OnApplicationShutdown, Provider } from '@nestjs/common';
import { getDataSourceToken, getRepositoryToken, TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { AuthModule } from '../auth/auth.module';
import { Budget } from '../budgets/budget.entity';
import { BudgetRepository } from '../budgets/budget.repository';
import { BudgetsModule } from '../budgets/budgets.module';
import { WORKER_DATA_SOURCE } from '../database/data-source';
import { UsageModule } from '../usage/usage.module';
import { ReservationCounters } from './reservation-counters';
import { ReservationLoader } from './reservation-loader.service';
import { ReservationMetrics } from './reservation-metrics';
import { ReservationReconciler } from './reservation-reconciler.service';
import { ReservationSettlementService } from './reservation-settlement.service';
import { Reservation } from './reservation.entity';
import { ReservationsController } from './reservations.controller';
import { ReservationsRepository } from './reservations.repository';
import { ReservationsService } from './reservations.service';
import { ReservationRedefinitions } from './reservation-redefinitions';

/**
 * Reservations (SPEC §4.1): the services, in every process. The ingest workflow
 * (src/workflows/ingest.workflow.ts) calls {@link ReservationSettlementService.settle} after it
 * stored records; the HTTP side is {@link ReservationsApiModule}, the reconciler
 * {@link ReservationsWorkerModule}.
 */
@Module({
  imports: [TypeOrmModule.forFeature([Reservation]), AuthModule, UsageModule, BudgetsModule],
  // The reconciler here runs on demand only (on the API's pool); the worker runs its own, periodically.
  providers: [ReservationsRepository, ReservationCounters, ReservationLoader, ReservationMetrics, ReservationsService, ReservationSettlementService, ReservationReconciler, ReservationRedefinitions],
  exports: [ReservationsService, ReservationSettlementService, ReservationCounters, ReservationMetrics, ReservationReconciler, ReservationRedefinitions],
})
export class ReservationsModule {}

@Module({ imports: [ReservationsModule], controllers: [ReservationsController] })
export class ReservationsApiModule {}

/**
 * The reconciler's services on the worker's own pool (WORKER_DATABASE_POOL_SIZE), as the alert
 * jobs (AlertsWorkerModule): its reads never take the API's connections, nor the API its.
 */
const ON_WORKER_POOL: Provider[] = [
  { provide: getDataSourceToken(), useExisting: getDataSourceToken(WORKER_DATA_SOURCE) },
  ...[Reservation, Budget].map((entity) => ({
    provide: getRepositoryToken(entity),
    useFactory: (dataSource: DataSource) => dataSource.getRepository(entity),
    inject: [getDataSourceToken(WORKER_DATA_SOURCE)],
  })),
  ReservationsRepository,
  BudgetRepository,
  ReservationLoader,
  ReservationReconciler,
];

/** Runs the reconciler periodically: loaded only by processes that run the worker. */
@Module({ imports: [ReservationsModule], providers: ON_WORKER_POOL })
export class ReservationsWorkerModule implements OnApplicationBootstrap, OnApplicationShutdown {
  constructor(private readonly reconciler: ReservationReconciler) {}

  onApplicationBootstrap(): void {
    this.reconciler.start();
  }

  onApplicationShutdown(): Promise<void> {
    return this.reconciler.stop();
  }
}

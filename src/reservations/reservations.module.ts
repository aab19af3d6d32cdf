import { forwardRef, Module, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AuthModule } from '../auth/auth.module';
import { Budget } from '../budgets/budget.entity';
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

/**
 * Reservations (SPEC §4.1): the services, in every process. Ingest calls
 * {@link ReservationSettlementService.settle} after it stored records; the HTTP side is
 * {@link ReservationsApiModule}, the reconciler {@link ReservationsWorkerModule}.
 */
@Module({
  // forwardRef: usage.module.ts imports this file for the ingest controller's settling step.
  imports: [TypeOrmModule.forFeature([Reservation, Budget]), AuthModule, forwardRef(() => UsageModule)],
  providers: [ReservationsRepository, ReservationCounters, ReservationLoader, ReservationMetrics, ReservationsService, ReservationSettlementService, ReservationReconciler],
  exports: [ReservationsService, ReservationSettlementService, ReservationCounters, ReservationReconciler],
})
export class ReservationsModule {}

@Module({ imports: [ReservationsModule], controllers: [ReservationsController] })
export class ReservationsApiModule {}

/** Runs the reconciler periodically: loaded only by processes that run the worker. */
@Module({ imports: [ReservationsModule] })
export class ReservationsWorkerModule implements OnApplicationBootstrap, OnApplicationShutdown {
  constructor(private readonly reconciler: ReservationReconciler) {}

  onApplicationBootstrap(): void {
    this.reconciler.start();
  }

  onApplicationShutdown(): Promise<void> {
    return this.reconciler.stop();
  }
}

import { forwardRef, Module } from '@nestjs/common';
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
  providers: [ReservationsRepository, ReservationCounters, ReservationLoader, ReservationMetrics, ReservationsService, ReservationSettlementService],
  exports: [ReservationsService, ReservationSettlementService, ReservationCounters, ReservationLoader, ReservationsRepository, ReservationMetrics],
})
export class ReservationsModule {}

@Module({ imports: [ReservationsModule], controllers: [ReservationsController] })
export class ReservationsApiModule {}

/** The reconciler: loaded only by processes that run the worker. */
@Module({ imports: [ReservationsModule], providers: [ReservationReconciler], exports: [ReservationReconciler] })
export class ReservationsWorkerModule {}

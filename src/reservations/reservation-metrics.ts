import { Injectable } from '@nestjs/common';
import { Counter } from 'prom-client';
import { MetricsService } from '../metrics/metrics.service';
import { Reservation } from './reservation.entity';
import { StoredDecision } from './reservation-decision';

/** Prometheus counters of reservations: decisions by outcome, and the reconciler's repairs. */
@Injectable()
export class ReservationMetrics {
  private readonly decisions: Counter<string>;
  private readonly repairs: Counter<string>;
  private readonly settleFailures: Counter<string>;
  private readonly redecisions: Counter<string>;
  private readonly reconcileFailures: Counter<string>;

  constructor(metrics: MetricsService) {
    this.decisions = metrics.counter(
      'tally_reservation_decisions_total',
      'Reservation decisions by outcome: granted, partial (less than max_output_tokens), replayed (a repeated request_id), or the denial reason (api_key_revoked included)',
      ['outcome'],
    );
    this.repairs = metrics.counter(
      'tally_reservation_drift_repairs_total',
      'Budget windows whose Redis counters the reconciler found different from PostgreSQL and repaired, by what differed (committed or held)',
      ['kind'],
    );
    this.settleFailures = metrics.counter(
      'tally_reservation_settle_failures_total',
      'Ingests whose settling into the reservation counters failed (the records are stored; the reconciler repairs the counters)',
    );
    this.reconcileFailures = metrics.counter(
      'tally_reservation_reconcile_failures_total',
      'Budget windows whose comparison with PostgreSQL failed in a reconciler pass (logged; the pass went on with the others, and the next pass tries again)',
    );
    this.redecisions = metrics.counter(
      'tally_reservation_redecisions_total',
      'Admissions decided again because a fence moved between their Redis step and their insert (a rebuild or repair of the counters, or a budget change); the first decision was not stored',
    );
  }

  decided(row: Reservation): void {
    const decision = row.decision as unknown as StoredDecision;
    const outcome =
      row.status === 'denied' ? (decision.reason ?? decision.denied_by[0]?.reason ?? 'denied') : row.grantedOutputTokens === row.maxOutputTokens ? 'granted' : 'partial';
    this.decisions.inc({ outcome });
  }

  replayed(): void {
    this.decisions.inc({ outcome: 'replayed' });
  }

  repaired(kind: 'committed' | 'held'): void {
    this.repairs.inc({ kind });
  }

  staled(): void {
    this.redecisions.inc();
  }

  reconcileFailed(windows: number): void {
    this.reconcileFailures.inc(windows);
  }

  settleFailed(): void {
    this.settleFailures.inc();
  }
}

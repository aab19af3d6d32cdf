import { Check, Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { ThresholdAction } from '../budgets/budget.entity';
import { ALERT_EVENT_TYPES, AlertEventType } from './alert-body';

/**
 * Where an alert's delivery stands. `pending`: to be delivered (a delivery job exists or the
 * evaluator re-enqueues one); `delivered`: a receiver answered 2xx; `failed`: every attempt failed
 * or the receiver answered 410; `skipped`: the budget had no (enabled) webhook.
 */
export type AlertState = 'pending' | 'delivered' | 'failed' | 'skipped';
export const ALERT_STATES: readonly AlertState[] = ['pending', 'delivered', 'failed', 'skipped'];

/**
 * One threshold event: a crossing, or the resolution of a crossed block threshold (SPEC §5); at
 * most one of each per (budget, window, threshold pct), enforced by the unique index, whatever the
 * number of evaluators. Its id is the webhook's `webhook-id`, and `body` holds
 * the exact bytes every attempt and redelivery sends.
 *
 * No foreign key to `budgets`: deleting a budget keeps its alerts (SPEC §5 sends
 * `budget.threshold.resolved` for a deleted budget that was blocking). The delete copies the
 * webhook target into the `target_*` columns of the budget's alerts still to be delivered, so
 * those deliveries go on without the budget row (see BudgetChangeWorkflow.delete).
 */
@Entity({ name: 'alerts' })
@Index('alerts_budget_window_pct_key', ['orgId', 'budgetId', 'windowStart', 'windowEnd', 'thresholdPct', 'eventType'], { unique: true })
@Index('alerts_state_idx', ['state', 'id'])
@Check('alerts_event_type_check', `"event_type" IN (${ALERT_EVENT_TYPES.map((t) => `'${t}'`).join(', ')})`)
@Check('alerts_state_check', `"state" IN ('pending', 'delivered', 'failed', 'skipped')`)
export class Alert {
  /** The budget's org: in every key, so the table can be distributed by org (SPEC §8). */
  @PrimaryColumn({ name: 'org_id', type: 'varchar', length: 40 })
  orgId: string;

  @PrimaryColumn({ type: 'varchar', length: 40 })
  id: string;

  /** The budget's id; the budget may have been deleted since (no foreign key, see above). */
  @Column({ name: 'budget_id', type: 'varchar', length: 40 })
  budgetId: string;

  @Column({ name: 'window_start', type: 'timestamptz' })
  windowStart: Date;

  @Column({ name: 'window_end', type: 'timestamptz' })
  windowEnd: Date;

  /** The threshold's pct exactly as configured (at most 6 decimals and 10^9); read as a string. */
  @Column({ name: 'threshold_pct', type: 'numeric', precision: 16, scale: 6 })
  thresholdPct: string;

  /** `budget.threshold.crossed` or `budget.threshold.resolved`. */
  @Column({ name: 'event_type', type: 'varchar', length: 40, default: 'budget.threshold.crossed' })
  eventType: AlertEventType;

  @Column({ name: 'threshold_action', type: 'varchar', length: 10 })
  thresholdAction: ThresholdAction;

  /** The JSON body, exactly as sent (signature input), built once at the crossing. */
  @Column({ type: 'text' })
  body: string;

  @Column({ type: 'varchar', length: 10 })
  state: AlertState;

  @Column({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;

  @Column({ name: 'delivered_at', type: 'timestamptz', nullable: true })
  deliveredAt: Date | null;

  /** Set when the budget was deleted with this alert still to deliver: its webhook URL then. */
  @Column({ name: 'target_webhook_url', type: 'varchar', length: 2048, nullable: true })
  targetWebhookUrl: string | null;

  /** The deleted budget's sealed signing secret (never returned). */
  @Column({ name: 'target_secret_sealed', type: 'bytea', nullable: true, select: false })
  targetSecretSealed: Buffer | null;

  /** The deleted budget's previous sealed secret, while its rotation lasts (never returned). */
  @Column({ name: 'target_previous_secret_sealed', type: 'bytea', nullable: true, select: false })
  targetPreviousSecretSealed: Buffer | null;

  @Column({ name: 'target_previous_secret_expires_at', type: 'timestamptz', nullable: true })
  targetPreviousSecretExpiresAt: Date | null;
}

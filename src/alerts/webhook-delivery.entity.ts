import { Check, Column, CreateDateColumn, Entity, Index, JoinColumn, ManyToOne, PrimaryColumn } from 'typeorm';
import { Alert } from './alert.entity';

/** `pending`: queued, not attempted yet (a redelivery's first attempt); then `succeeded` or `failed`. */
export type DeliveryStatus = 'pending' | 'succeeded' | 'failed';
export const DELIVERY_STATUSES: readonly DeliveryStatus[] = ['pending', 'succeeded', 'failed'];

/** What started the attempt sequence: the crossing itself, or a redelivery request. */
export type DeliveryTrigger = 'alert' | 'redelivery';
export const DELIVERY_TRIGGERS: readonly DeliveryTrigger[] = ['alert', 'redelivery'];

/** One webhook delivery attempt (the delivery log). Never holds the secret or the signature. */
@Entity({ name: 'webhook_deliveries' })
@Index('webhook_deliveries_budget_idx', ['budgetId', 'createdAt', 'id'])
@Index('webhook_deliveries_alert_idx', ['orgId', 'alertId'])
@Check('webhook_deliveries_status_check', `"status" IN ('pending', 'succeeded', 'failed')`)
@Check('webhook_deliveries_trigger_check', `"trigger" IN ('alert', 'redelivery')`)
export class WebhookDelivery {
  /** The alert's org: in every key and in the foreign key, so the table can be distributed by org (SPEC §8). */
  @PrimaryColumn({ name: 'org_id', type: 'varchar', length: 40 })
  orgId: string;

  @PrimaryColumn({ type: 'varchar', length: 40 })
  id: string;

  @Column({ name: 'alert_id', type: 'varchar', length: 40 })
  alertId: string;

  @ManyToOne(() => Alert, { onDelete: 'CASCADE' })
  @JoinColumn([
    { name: 'org_id', referencedColumnName: 'orgId' },
    { name: 'alert_id', referencedColumnName: 'id' },
  ])
  alert?: Alert;

  @Column({ name: 'budget_id', type: 'varchar', length: 40 })
  budgetId: string;

  @Column({ type: 'varchar', length: 12 })
  trigger: DeliveryTrigger;

  /** 1-based number of the attempt within its sequence (the crossing's, or one redelivery's). */
  @Column({ type: 'integer' })
  attempt: number;

  @Column({ type: 'varchar', length: 10 })
  status: DeliveryStatus;

  /** Where the attempt went (the budget's webhook URL at the time). */
  @Column({ type: 'varchar', length: 2048, nullable: true })
  url: string | null;

  @Column({ name: 'status_code', type: 'integer', nullable: true })
  statusCode: number | null;

  /** Why the attempt failed (network error, timeout, refused target, HTTP status); no secrets. */
  @Column({ type: 'varchar', length: 500, nullable: true })
  error: string | null;

  @Column({ name: 'latency_ms', type: 'integer', nullable: true })
  latencyMs: number | null;

  @Column({ name: 'attempted_at', type: 'timestamptz', nullable: true })
  attemptedAt: Date | null;

  /** When the next attempt of this sequence is due, after a failure that will be retried. */
  @Column({ name: 'next_retry_at', type: 'timestamptz', nullable: true })
  nextRetryAt: Date | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;
}

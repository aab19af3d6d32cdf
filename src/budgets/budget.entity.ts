import { Check, Column, CreateDateColumn, Entity, Index, PrimaryColumn, UpdateDateColumn } from 'typeorm';
import type { BudgetPeriod } from './budget-window';

export type BudgetScope = 'org' | 'apikey' | 'team' | 'user';
export type BudgetOwner = 'cluster' | 'org';
export type LimitKind = 'cost' | 'tokens';
export type ThresholdAction = 'alert' | 'block';

export interface Threshold {
  pct: number;
  action: ThresholdAction;
}

/** A spend cap of one scope (an org, an API key, a team or an end user of an org) per period; one per (scope, scope_id, owner). */
@Entity({ name: 'budgets' })
@Index('budgets_scope_owner_key', ['scope', 'scopeId', 'owner'], { unique: true })
@Index('budgets_org_idx', ['orgId'])
@Check('budgets_scope_check', `"scope" IN ('org', 'apikey', 'team', 'user')`)
@Check('budgets_owner_check', `"owner" IN ('cluster', 'org')`)
@Check('budgets_period_check', `"period" IN ('daily', 'weekly', 'monthly')`)
@Check('budgets_limit_kind_check', `"limit_kind" IN ('cost', 'tokens')`)
@Check('budgets_limit_check', `"limit_value" > 0`)
export class Budget {
  @PrimaryColumn({ type: 'varchar', length: 40 })
  id: string;

  @Column({ type: 'varchar', length: 10 })
  scope: BudgetScope;

  /** The org or key id; for `team` and `user`, `{orgId}/{id}` (see budget-scope.ts). */
  @Column({ name: 'scope_id', type: 'varchar', length: 200 })
  scopeId: string;

  /** The org the scope belongs to (the org itself, or the key's org): visibility and spend. */
  @Column({ name: 'org_id', type: 'varchar', length: 40 })
  orgId: string;

  @Column({ type: 'varchar', length: 10 })
  owner: BudgetOwner;

  @Column({ type: 'varchar', length: 10 })
  period: BudgetPeriod;

  /** IANA time zone of the windows (SPEC §4.2): days, weeks and months start at local midnight. */
  @Column({ type: 'varchar', length: 100, default: 'UTC' })
  timezone: string;

  @Column({ name: 'limit_kind', type: 'varchar', length: 10 })
  limitKind: LimitKind;

  /** Major currency units (cost) or tokens, exact to 9 decimals; read as a string. */
  @Column({ name: 'limit_value', type: 'numeric', precision: 38, scale: 9 })
  limitValue: string;

  @Column({ type: 'jsonb' })
  thresholds: Threshold[];

  @Column({ name: 'webhook_url', type: 'varchar', length: 2048, nullable: true })
  webhookUrl: string | null;

  /** The webhook secret, sealed with SECRETS_KEY (AES-256-GCM); never returned. */
  @Column({ name: 'webhook_secret_sealed', type: 'bytea', nullable: true, select: false })
  webhookSecretSealed: Buffer | null;

  /** The secret before the last change, sealed; deliveries are signed with it too until its expiry (SPEC §5). */
  @Column({ name: 'webhook_previous_secret_sealed', type: 'bytea', nullable: true, select: false })
  webhookPreviousSecretSealed: Buffer | null;

  /** When the previous secret stops signing (24 h after the change). */
  @Column({ name: 'webhook_previous_secret_expires_at', type: 'timestamptz', nullable: true })
  webhookPreviousSecretExpiresAt: Date | null;

  /** Set when the receiver answered 410 Gone: no more deliveries until the URL is set again. */
  @Column({ name: 'webhook_disabled_at', type: 'timestamptz', nullable: true })
  webhookDisabledAt: Date | null;

  /**
   * Names the budget's reservation counters (src/reservations): moved forward by a change of what
   * they count (period, time zone, limit kind, or whether a threshold blocks), so counters kept
   * under the old definition are never read under the new one.
   */
  @Column({ name: 'counter_epoch', type: 'bigint', default: 0 })
  counterEpoch: string;

  @Column({ name: 'updated_by', type: 'varchar', length: 40, nullable: true })
  updatedBy: string | null;

  @Column({ name: 'updated_on_behalf_of', type: 'varchar', length: 150, nullable: true })
  updatedOnBehalfOf: string | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt: Date;
}

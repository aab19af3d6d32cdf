import { Column, Entity, PrimaryColumn } from 'typeorm';

/** The fence of the budgets of one target (`org`, `apikey`, `team` or `user` and its scope id), as the trigger `budgets_fence` names it. */
export function scopeFence(scope: string, scopeId: string): string {
  return `${scope}:${scopeId}`;
}

/**
 * A counter an admission's insert checks (see AdmissionBatches). Per budget target
 * ({@link scopeFence}), bumped by the trigger `budgets_fence` whenever a budget of that target is
 * created, deleted or changed in a way a decision depends on; per budget id, bumped by every
 * rebuild or repair of that budget's counters in Redis (which are stamped with the new value). A
 * row that decided from an older value is not stored: its admission decides again. A missing row
 * reads as 0. At most one row per budget target and one per budget.
 */
@Entity({ name: 'reservation_fences' })
export class ReservationFence {
  @PrimaryColumn({ name: 'org_id', type: 'varchar', length: 40 })
  orgId: string;

  /** `<scope>:<scope_id>`, or a budget id. */
  @PrimaryColumn({ type: 'varchar', length: 255 })
  fence: string;

  @Column({ type: 'bigint', default: 0 })
  value: string;
}

import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';

/**
 * Evaluations an ingest could not enqueue (Redis was down), and those of records dated before
 * yesterday: the worker's evaluate-all runs them, so the windows the records touched still alert
 * (SPEC §5) whatever Redis lost.
 */
@Entity({ name: 'budget_evaluation_requests' })
export class EvaluationRequest {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id: string;

  @Column({ name: 'org_id', type: 'varchar', length: 40 })
  orgId: string;

  @Column({ name: 'api_key_ids', type: 'varchar', length: 40, array: true })
  apiKeyIds: string[];

  /**
   * Teams of those keys and end users of the records, whose budgets count too (null in rows kept
   * before these were: then every team and end-user budget of the org is evaluated).
   */
  @Column({ name: 'team_ids', type: 'text', array: true, nullable: true })
  teamIds: string[] | null;

  @Column({ name: 'user_ids', type: 'text', array: true, nullable: true })
  userIds: string[] | null;

  /** UTC days (YYYY-MM-DD) of the records. */
  @Column({ type: 'varchar', length: 10, array: true })
  days: string[];

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;
}

import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';

/**
 * Evaluations an ingest could not enqueue (Redis was down): the worker's evaluate-all runs them
 * when Redis is back, so the windows the records touched still alert (SPEC §5).
 */
@Entity({ name: 'budget_evaluation_requests' })
export class EvaluationRequest {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id: string;

  @Column({ name: 'org_id', type: 'varchar', length: 40 })
  orgId: string;

  @Column({ name: 'api_key_ids', type: 'varchar', length: 40, array: true })
  apiKeyIds: string[];

  /** UTC days (YYYY-MM-DD) of the records. */
  @Column({ type: 'varchar', length: 10, array: true })
  days: string[];

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;
}

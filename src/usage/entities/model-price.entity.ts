import { Column, CreateDateColumn, Entity, PrimaryColumn } from 'typeorm';

/**
 * One version of a model's price (SPEC §3.1 price book), in integer nano-units per million
 * tokens. A record is priced by the version in force at its `created_at`.
 */
@Entity({ name: 'model_prices' })
export class ModelPrice {
  @PrimaryColumn({ type: 'varchar', length: 200 })
  model: string;

  @PrimaryColumn({ name: 'effective_from', type: 'timestamptz' })
  effectiveFrom: Date;

  @Column({ name: 'input_per_mtok_nano', type: 'bigint' })
  inputPerMtokNano: string;

  @Column({ name: 'cached_input_per_mtok_nano', type: 'bigint' })
  cachedInputPerMtokNano: string;

  @Column({ name: 'output_per_mtok_nano', type: 'bigint' })
  outputPerMtokNano: string;

  @Column({ name: 'created_by', type: 'varchar', length: 40, nullable: true })
  createdBy: string | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;
}

/** The version in force at `at` (Unix seconds) among versions sorted newest first. */
export function inForce(versions: ModelPrice[], at: number): ModelPrice | undefined {
  return versions.find((v) => v.effectiveFrom.getTime() <= at * 1000);
}

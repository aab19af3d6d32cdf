import { Check, Column, CreateDateColumn, Entity, Index, PrimaryColumn } from 'typeorm';

/** Stored states; `expired` is not stored: a `held` reservation past its `expires_at` reads as expired. */
export type StoredReservationStatus = 'held' | 'denied' | 'settled' | 'released';

/** One budget window a reservation holds an amount in (tokens or nano-units, the budget's kind). */
export interface ReservationHold {
  budget_id: string;
  /** Start of the budget's window, Unix seconds. */
  window_start: number;
  /** Decimal string. */
  amount: string;
  /** The budget's counter_epoch the hold counts in (absent: 0, as stored before epochs). */
  epoch?: string;
}

/**
 * A reservation (SPEC §4.1): what the gateway asked for, what it was granted, and the holds it
 * keeps until a usage record settles it, it is released, or it expires. PostgreSQL is the truth
 * the Redis counters are rebuilt from. Keyed by org (every key of tenant data includes org_id).
 */
@Entity({ name: 'reservations' })
@Index('reservations_request_key', ['orgId', 'apiKeyId', 'requestId'], { unique: true })
@Index('reservations_id_idx', ['id'])
@Index('reservations_live_idx', ['orgId', 'expiresAt'], { where: `"status" = 'held'` })
@Check('reservations_status_check', `"status" IN ('held', 'denied', 'settled', 'released')`)
export class Reservation {
  @PrimaryColumn({ name: 'org_id', type: 'varchar', length: 40 })
  orgId: string;

  @PrimaryColumn({ type: 'varchar', length: 40 })
  id: string;

  @Column({ name: 'api_key_id', type: 'varchar', length: 40 })
  apiKeyId: string;

  /** The gateway's idempotency key, unique per API key. */
  @Column({ name: 'request_id', type: 'varchar', length: 200 })
  requestId: string;

  @Column({ name: 'user_id', type: 'varchar', length: 150, nullable: true })
  userId: string | null;

  @Column({ type: 'varchar', length: 200 })
  model: string;

  @Column({ name: 'input_tokens', type: 'bigint' })
  inputTokens: string;

  @Column({ name: 'max_output_tokens', type: 'bigint' })
  maxOutputTokens: string;

  @Column({ name: 'min_output_tokens', type: 'bigint' })
  minOutputTokens: string;

  @Column({ name: 'granted_output_tokens', type: 'bigint' })
  grantedOutputTokens: string;

  @Column({ type: 'varchar', length: 10 })
  status: StoredReservationStatus;

  @Column({ name: 'reserved_tokens', type: 'bigint' })
  reservedTokens: string;

  @Column({ name: 'reserved_cost_nano', type: 'bigint' })
  reservedCostNano: string;

  /** The amounts held per budget window (empty when denied or when no budget applies). */
  @Column({ type: 'jsonb' })
  holds: ReservationHold[];

  /** The decision as answered: denied_by, the budgets' figures at that moment, retry_after. */
  @Column({ type: 'jsonb' })
  decision: Record<string, unknown>;

  /** When the hold stops counting (null for a denial). */
  @Column({ name: 'expires_at', type: 'timestamptz', nullable: true })
  expiresAt: Date | null;

  /** The usage record that settled it. */
  @Column({ name: 'record_id', type: 'varchar', length: 200, nullable: true })
  recordId: string | null;

  @Column({ name: 'settled_at', type: 'timestamptz', nullable: true })
  settledAt: Date | null;

  @Column({ name: 'released_at', type: 'timestamptz', nullable: true })
  releasedAt: Date | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;
}

import { Injectable } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { DataSource, EntityManager, QueryRunner, Repository } from 'typeorm';
import { AdmissionBatches, AdmissionWork } from './admission-batches';
import { INSERT_RESERVATION, insertParams, orgLockKey, RESERVATION_LOCK_CLASS } from './admission-sql';
import { Reservation } from './reservation.entity';

/** A live hold as stored: one budget window of one reservation. */
export interface StoredHold {
  reservationId: string;
  budgetId: string;
  windowStart: number;
  amount: bigint;
  expiresAtMs: number;
}

/**
 * SQL of reservations and their fences: the one place that writes to them (with AdmissionBatches,
 * which also reads the budgets of each admission; every other budget read is BudgetRepository's).
 */
@Injectable()
export class ReservationsRepository {
  private readonly batches: AdmissionBatches;

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    @InjectRepository(Reservation) private readonly reservations: Repository<Reservation>,
  ) {
    this.batches = new AdmissionBatches(dataSource);
  }

  /**
   * An admission, in a batch with those that arrive at the same time (see {@link AdmissionBatches}):
   * `work` gets the budgets of the key, of the org, of the key's team and of the end user (null:
   * none), runs the Redis admission, then calls `store`, which resolves once the batch's insert has
   * committed: `inserted`, `duplicate` (its request id was stored already) or `stale` (a fence it
   * decided from moved: nothing stored). Without `store`, the admission writes nothing.
   */
  admission<T>(
    orgId: string,
    apiKeyId: string,
    scopes: { teamId: string | null; userId: string | null },
    work: AdmissionWork<T>,
  ): Promise<T> {
    return this.batches.run({ orgId, apiKeyId, scopes }, work);
  }

  /**
   * Runs `work` in a transaction holding the org's reservation lock exclusively (a rebuild or a
   * repair, which bumps its budgets' fences and reads their holds: an admission's insert takes the
   * lock shared and checks its fences, so each row is either seen by that read or not stored).
   */
  async withOrgLock<T>(orgId: string, mode: 'exclusive', work: (manager: EntityManager) => Promise<T>): Promise<T> {
    // One round trip: both are numbers, so the statement is built from no outside text.
    return this.inTransaction(`BEGIN; SELECT pg_advisory_xact_lock(${RESERVATION_LOCK_CLASS}, ${orgLockKey(orgId)})`, work);
  }

  /**
   * Moves the fence of each budget forward (under the org's exclusive lock, before its holds are
   * read): rows that granted from the counters being replaced are not stored after this commits.
   * Returns each budget's new value, to stamp on its counters.
   */
  async bumpFences(manager: EntityManager, orgId: string, budgetIds: string[]): Promise<Map<string, string>> {
    const rows: Array<{ fence: string; value: string }> = await manager.query(
      `INSERT INTO reservation_fences (org_id, fence, value) SELECT $1, b, 1 FROM unnest($2::varchar[]) b
       ON CONFLICT (org_id, fence) DO UPDATE SET value = reservation_fences.value + 1 RETURNING fence, value::text`,
      [orgId, [...new Set(budgetIds)].sort()],
    );
    return new Map(rows.map((r) => [r.fence, r.value]));
  }

  /** The fences of these budgets now (0 for one never bumped). */
  async fences(orgId: string, budgetIds: string[]): Promise<Map<string, string>> {
    const rows: Array<{ fence: string; value: string }> = await this.dataSource.query(
      `SELECT fence, value::text FROM reservation_fences WHERE org_id = $1 AND fence = ANY($2::varchar[])`,
      [orgId, budgetIds],
    );
    const stored = new Map(rows.map((r) => [r.fence, r.value]));
    return new Map(budgetIds.map((id) => [id, stored.get(id) ?? '0']));
  }

  /** Runs `work` in a read-only REPEATABLE READ transaction: every read sees one snapshot. */
  withSnapshot<T>(work: (manager: EntityManager) => Promise<T>): Promise<T> {
    return this.inTransaction('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY', work);
  }

  /** Runs `work` on one connection between `begin` (a statement that opens the transaction) and COMMIT; ROLLBACK when it throws. */
  private async inTransaction<T>(begin: string, work: (manager: EntityManager) => Promise<T>): Promise<T> {
    const runner: QueryRunner = this.dataSource.createQueryRunner();
    await runner.connect();
    try {
      await runner.query(begin);
      const result = await work(runner.manager);
      await runner.query('COMMIT');
      return result;
    } catch (err) {
      await runner.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      await runner.release();
    }
  }

  /** Which of these record ids of an org are stored (as the caller's snapshot sees it). */
  async recordsPresent(manager: EntityManager, orgId: string, ids: string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const rows: Array<{ id: string }> = await manager.query('SELECT id FROM completion_records WHERE org_id = $1 AND id = ANY($2)', [orgId, ids]);
    return rows.map((r) => r.id);
  }

  /**
   * Ids of an org's records created in [from, to) and in the last hour, and stored in the last
   * `seconds` (as the caller's snapshot sees them). The hour keeps it an index range of the
   * (org_id, created_at) index, however long the window; a record reported more than an hour
   * late whose settle races a rebuild may count twice until the reconciler's next pass (too
   * much, never too little).
   */
  async recentRecords(manager: EntityManager, orgId: string, from: Date, to: Date, seconds: number): Promise<string[]> {
    const rows: Array<{ id: string }> = await manager.query(
      `SELECT id FROM completion_records
       WHERE org_id = $1 AND created_at >= GREATEST($2::timestamptz, now() - interval '1 hour') AND created_at < $3
         AND ingested_at > now() - make_interval(secs => $4)`,
      [orgId, from.toISOString(), to.toISOString(), seconds],
    );
    return rows.map((r) => r.id);
  }

  /** Inserts a reservation outside an admission (a revoked key's denial); false when (org, key, request id) is already stored. */
  async insert(reservation: Reservation): Promise<boolean> {
    const rows: unknown[] = await this.dataSource.query(INSERT_RESERVATION, insertParams(reservation));
    return rows.length === 1;
  }

  findById(id: string): Promise<Reservation | null> {
    return this.reservations.findOne({ where: { id } });
  }

  findByRequest(orgId: string, apiKeyId: string, requestId: string): Promise<Reservation | null> {
    return this.reservations.findOne({ where: { orgId, apiKeyId, requestId } });
  }

  /** held → released unless it expired (then nothing changes); returns the row that was released, if any. */
  async release(orgId: string, id: string): Promise<Reservation | null> {
    // TypeORM answers an UPDATE with [rows, affected].
    const [rows]: [Array<{ id: string }>, number] = await this.dataSource.query(
      `UPDATE reservations SET status = 'released', released_at = now()
       WHERE org_id = $1 AND id = $2 AND status = 'held' AND expires_at > now() RETURNING id`,
      [orgId, id],
    );
    return rows.length ? this.reservations.findOneByOrFail({ orgId, id }) : null;
  }

  /**
   * Marks the reservations named by newly stored records settled (each once: a settled or denied
   * reservation, or one of another key, is left alone). Returns the holds they kept.
   */
  async settle(records: Array<{ orgId: string; apiKeyId: string; reservationId: string; recordId: string }>): Promise<Array<{ orgId: string; id: string; holds: Reservation['holds'] }>> {
    if (records.length === 0) return [];
    const [rows]: [Array<{ org_id: string; id: string; holds: Reservation['holds'] }>, number] = await this.dataSource.query(
      `WITH s AS (SELECT DISTINCT ON (org_id, id) * FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::varchar[]) AS s(org_id, id, api_key_id, record_id)),
       -- Locked in (org, id) order, as a budget redefinition locks them (reservation-redefinitions.ts):
       -- two multi-row updates taking rows in different orders would deadlock.
       locked AS MATERIALIZED (
         SELECT r.org_id, r.id FROM reservations r JOIN s ON r.org_id = s.org_id AND r.id = s.id
         WHERE r.api_key_id = s.api_key_id AND r.status IN ('held', 'released')
         ORDER BY r.org_id, r.id FOR UPDATE OF r)
       UPDATE reservations r SET status = 'settled', settled_at = now(), record_id = s.record_id
       FROM s JOIN locked l ON l.org_id = s.org_id AND l.id = s.id
       WHERE r.org_id = s.org_id AND r.id = s.id AND r.api_key_id = s.api_key_id AND r.status IN ('held', 'released')
       RETURNING r.org_id, r.id, r.holds`,
      [records.map((r) => r.orgId), records.map((r) => r.reservationId), records.map((r) => r.apiKeyId), records.map((r) => r.recordId)],
    );
    return rows.map((r) => ({ orgId: r.org_id, id: r.id, holds: r.holds }));
  }

  /** Live holds (held, not expired) of an org's budgets in the given windows (of the given counter epochs). */
  async liveHolds(manager: EntityManager, orgId: string, windows: Array<{ budgetId: string; epoch: string; start: number }>): Promise<StoredHold[]> {
    if (windows.length === 0) return [];
    const rows: Array<{ id: string; budget_id: string; window_start: string; amount: string; expires_ms: string }> = await manager.query(
      `SELECT r.id, h.budget_id, h.window_start::text, h.amount, (extract(epoch FROM r.expires_at) * 1000)::bigint::text AS expires_ms
       FROM reservations r, jsonb_to_recordset(r.holds) AS h(budget_id varchar, window_start bigint, amount text, epoch text)
       WHERE r.org_id = $1 AND r.status = 'held' AND r.expires_at > now()
         AND (h.budget_id, h.window_start, COALESCE(h.epoch, '0')) IN (SELECT * FROM unnest($2::varchar[], $3::bigint[], $4::text[]))`,
      [orgId, windows.map((w) => w.budgetId), windows.map((w) => String(w.start)), windows.map((w) => w.epoch)],
    );
    return rows.map((r) => ({ reservationId: r.id, budgetId: r.budget_id, windowStart: Number(r.window_start), amount: BigInt(r.amount), expiresAtMs: Number(r.expires_ms) }));
  }

}

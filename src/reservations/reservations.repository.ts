import { Injectable } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { DataSource, EntityManager, QueryRunner, Repository } from 'typeorm';
import type { QueryDeepPartialEntity } from 'typeorm/query-builder/QueryPartialEntity';
import { Budget } from '../budgets/budget.entity';
import { Reservation } from './reservation.entity';

/** First key of pg_advisory_xact_lock(int, int) for reservations: admissions share it per org, rebuilds and the reconciler take it alone. */
export const RESERVATION_LOCK_CLASS = 7_240_117;

/** A live hold as stored: one budget window of one reservation. */
export interface StoredHold {
  reservationId: string;
  budgetId: string;
  windowStart: number;
  amount: bigint;
  expiresAtMs: number;
}

const UNIQUE_VIOLATION = '23505';

/** SQL of reservations and of the budgets they apply: the one place that writes to the table. */
@Injectable()
export class ReservationsRepository {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    @InjectRepository(Reservation) private readonly reservations: Repository<Reservation>,
    @InjectRepository(Budget) private readonly budgets: Repository<Budget>,
  ) {}

  /**
   * Runs `work` in a transaction holding the org's reservation lock, shared (admissions, side by
   * side) or exclusive (a rebuild or a repair, which must see every admission's row).
   */
  async withOrgLock<T>(orgId: string, mode: 'shared' | 'exclusive', work: (manager: EntityManager) => Promise<T>): Promise<T> {
    const runner: QueryRunner = this.dataSource.createQueryRunner();
    await runner.connect();
    try {
      await runner.startTransaction();
      await runner.query(`SELECT pg_advisory_xact_lock${mode === 'shared' ? '_shared' : ''}($1, hashtext($2))`, [RESERVATION_LOCK_CLASS, orgId]);
      const result = await work(runner.manager);
      await runner.commitTransaction();
      return result;
    } catch (err) {
      if (runner.isTransactionActive) await runner.rollbackTransaction().catch(() => undefined);
      throw err;
    } finally {
      await runner.release();
    }
  }

  /** Runs `work` in a read-only REPEATABLE READ transaction: every read sees one snapshot. */
  async withSnapshot<T>(work: (manager: EntityManager) => Promise<T>): Promise<T> {
    const runner = this.dataSource.createQueryRunner();
    await runner.connect();
    try {
      await runner.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
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

  /** Ids of an org's records created in [from, to) and stored in the last `seconds` (as the caller's snapshot sees them). */
  async recentRecords(manager: EntityManager, orgId: string, from: Date, to: Date, seconds: number): Promise<string[]> {
    const rows: Array<{ id: string }> = await manager.query(
      `SELECT id FROM completion_records WHERE org_id = $1 AND created_at >= $2 AND created_at < $3 AND ingested_at > now() - make_interval(secs => $4)`,
      [orgId, from.toISOString(), to.toISOString(), seconds],
    );
    return rows.map((r) => r.id);
  }

  /** Every budget of the key and of the org (either owner); the caller keeps those with a block threshold. */
  budgetsOf(orgId: string, apiKeyId: string, manager?: EntityManager): Promise<Budget[]> {
    return (manager ? manager.getRepository(Budget) : this.budgets)
      .createQueryBuilder('b')
      .where(`(b.scope = 'org' AND b.scope_id = :orgId) OR (b.scope = 'apikey' AND b.scope_id = :apiKeyId)`, { orgId, apiKeyId })
      .getMany();
  }

  /** Every budget of these orgs and keys. */
  budgetsOfMany(orgIds: string[], apiKeyIds: string[]): Promise<Budget[]> {
    return this.budgets
      .createQueryBuilder('b')
      .where(`(b.scope = 'org' AND b.scope_id = ANY(:orgIds)) OR (b.scope = 'apikey' AND b.scope_id = ANY(:apiKeyIds))`, { orgIds, apiKeyIds })
      .getMany();
  }

  /** Budgets by id (of one org). */
  budgetsByIds(orgId: string, ids: string[]): Promise<Budget[]> {
    return this.budgets.createQueryBuilder('b').where('b.org_id = :orgId AND b.id = ANY(:ids)', { orgId, ids }).getMany();
  }

  /** Inserts a reservation; false when (org, key, request id) is already stored. */
  async insert(manager: EntityManager, reservation: Reservation): Promise<boolean> {
    try {
      await manager.insert(Reservation, reservation as QueryDeepPartialEntity<Reservation>);
      return true;
    } catch (err) {
      if ((err as { driverError?: { code?: string } }).driverError?.code === UNIQUE_VIOLATION) return false;
      throw err;
    }
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
      `UPDATE reservations r SET status = 'settled', settled_at = now(), record_id = s.record_id
       FROM (SELECT DISTINCT ON (org_id, id) * FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::varchar[]) AS s(org_id, id, api_key_id, record_id)) s
       WHERE r.org_id = s.org_id AND r.id = s.id AND r.api_key_id = s.api_key_id AND r.status IN ('held', 'released')
       RETURNING r.org_id, r.id, r.holds`,
      [records.map((r) => r.orgId), records.map((r) => r.reservationId), records.map((r) => r.apiKeyId), records.map((r) => r.recordId)],
    );
    return rows.map((r) => ({ orgId: r.org_id, id: r.id, holds: r.holds }));
  }

  /** Live holds (held, not expired) of an org's budgets in the given windows. */
  async liveHolds(manager: EntityManager, orgId: string, windows: Array<{ budgetId: string; start: number }>): Promise<StoredHold[]> {
    if (windows.length === 0) return [];
    const rows: Array<{ id: string; budget_id: string; window_start: string; amount: string; expires_ms: string }> = await manager.query(
      `SELECT r.id, h.budget_id, h.window_start::text, h.amount, (extract(epoch FROM r.expires_at) * 1000)::bigint::text AS expires_ms
       FROM reservations r, jsonb_to_recordset(r.holds) AS h(budget_id varchar, window_start bigint, amount text)
       WHERE r.org_id = $1 AND r.status = 'held' AND r.expires_at > now()
         AND (h.budget_id, h.window_start) IN (SELECT * FROM unnest($2::varchar[], $3::bigint[]))`,
      [orgId, windows.map((w) => w.budgetId), windows.map((w) => String(w.start))],
    );
    return rows.map((r) => ({ reservationId: r.id, budgetId: r.budget_id, windowStart: Number(r.window_start), amount: BigInt(r.amount), expiresAtMs: Number(r.expires_ms) }));
  }

  /** Orgs that have budgets with a block threshold, and those budgets: what the reconciler walks. */
  blockingBudgets(): Promise<Budget[]> {
    return this.budgets.createQueryBuilder('b').where(`b.thresholds @> '[{"action": "block"}]'::jsonb`).orderBy('b.org_id').getMany();
  }
}

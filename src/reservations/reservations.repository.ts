import { Injectable } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { PoolClient, QueryResult } from 'pg';
import { DataSource, EntityManager, QueryRunner, Repository } from 'typeorm';
import { Budget } from '../budgets/budget.entity';
import { scopeKey } from '../budgets/budget-scope';
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

/** The org's lock key: a 32-bit FNV-1a hash of its id, as a signed integer (inlined into SQL as a number). */
export function orgLockKey(orgId: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < orgId.length; i++) {
    hash ^= orgId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash | 0;
}

const BUDGET_COLUMNS = `b.id, b.scope, b.scope_id, b.org_id, b.owner, b.period, b.limit_kind, b.limit_value::text AS limit_value, b.thresholds, b.timezone`;

function toBudget(row: Record<string, unknown>): Budget {
  return Object.assign(new Budget(), {
    id: row.id,
    scope: row.scope,
    scopeId: row.scope_id,
    orgId: row.org_id,
    owner: row.owner,
    period: row.period,
    limitKind: row.limit_kind,
    limitValue: row.limit_value,
    thresholds: row.thresholds,
    timezone: row.timezone,
  });
}

/**
 * Closes the connection instead of returning it to the pool: it may still hold a session lock.
 * (TypeORM's PostgresQueryRunner passes the error to the pg pool, which then destroys the client.)
 */
function discard(runner: QueryRunner, err: Error): Promise<void> {
  return (runner as unknown as { releasePostgresConnection(err: Error): Promise<void> }).releasePostgresConnection(err);
}

/** Takes the org's reservation lock shared, until the transaction ends, and reads the budgets that may apply. */
const ADMISSION_SQL = `SELECT ${BUDGET_COLUMNS}
  FROM (SELECT pg_advisory_xact_lock_shared($1, $2)) l
  LEFT JOIN budgets b ON (b.scope = 'org' AND b.scope_id = $3) OR (b.scope = 'apikey' AND b.scope_id = $4)
    OR (b.scope = 'team' AND b.scope_id = $5) OR (b.scope = 'user' AND b.scope_id = $6)`;

const INSERT_RESERVATION = `INSERT INTO reservations (org_id, id, api_key_id, request_id, user_id, model, input_tokens, max_output_tokens, min_output_tokens,
    granted_output_tokens, status, reserved_tokens, reserved_cost_nano, holds, decision, expires_at, created_at)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
  ON CONFLICT (org_id, api_key_id, request_id) DO NOTHING RETURNING id`;

/** The admission's two statements, prepared once per connection (see {@link ReservationsRepository.admission}). */
const PREPARE_ADMISSION =
  `PREPARE tally_reservation_admit(int, int, varchar, varchar, varchar, varchar) AS ${ADMISSION_SQL}; ` +
  `PREPARE tally_reservation_insert AS ${INSERT_RESERVATION}`;

/** The pool's connections that have the admission's statements. */
const PREPARED = new WeakSet<PoolClient>();

function insertParams(r: Reservation): Array<string | null> {
  return [
    r.orgId, r.id, r.apiKeyId, r.requestId, r.userId, r.model, r.inputTokens, r.maxOutputTokens, r.minOutputTokens,
    r.grantedOutputTokens, r.status, r.reservedTokens, r.reservedCostNano, JSON.stringify(r.holds), JSON.stringify(r.decision),
    r.expiresAt?.toISOString() ?? null, r.createdAt.toISOString(),
  ];
}

/**
 * SQL of reservations: the one place that writes to the table. The admission's statement reads
 * the budgets of the key, its org, its team and the end user too (in the statement that takes
 * the lock: one round trip);
 * every other budget read is BudgetRepository's.
 */
@Injectable()
export class ReservationsRepository {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    @InjectRepository(Reservation) private readonly reservations: Repository<Reservation>,
  ) {}

  /**
   * An admission's section, in one transaction on one connection: takes the org's reservation lock
   * shared (admissions run side by side) and reads the budgets of the key, of the org, of the
   * key's team and of the end user (null: none), runs `work` (the Redis admission, then `store`:
   * the insert of the reservation and the COMMIT, which lets the lock go). A rebuild takes the lock
   * exclusively, so it sees the row of every admission that granted from counters it is about to
   * replace. Two round trips to PostgreSQL in the admission's path: each is a simple-protocol
   * string (`BEGIN; EXECUTE …` and `EXECUTE …; COMMIT`) of statements prepared once per connection,
   * with the values as escaped literals. Without `store`, or when anything fails, the transaction
   * is rolled back (or the connection closed) and nothing is written.
   */
  async admission<T>(
    orgId: string,
    apiKeyId: string,
    scopes: { teamId: string | null; userId: string | null },
    work: (budgets: Budget[], store: (reservation: Reservation) => Promise<boolean>) => Promise<T>,
  ): Promise<T> {
    const runner: QueryRunner = this.dataSource.createQueryRunner();
    const client = (await runner.connect()) as PoolClient;
    const literal = (value: string | null) => (value === null ? 'NULL' : client.escapeLiteral(value));
    let open = false;
    try {
      if (!PREPARED.has(client)) {
        await client.query(PREPARE_ADMISSION);
        PREPARED.add(client);
      }
      open = true;
      const [, read] = (await client.query(
        `BEGIN; EXECUTE tally_reservation_admit(${RESERVATION_LOCK_CLASS}, ${orgLockKey(orgId)}, ${literal(orgId)}, ${literal(apiKeyId)}, ` +
          `${literal(scopes.teamId === null ? null : scopeKey('team', orgId, scopes.teamId))}, ${literal(scopes.userId === null ? null : scopeKey('user', orgId, scopes.userId))})`,
      )) as unknown as QueryResult<Record<string, unknown>>[];
      const store = async (reservation: Reservation) => {
        const [inserted] = (await client.query(
          `EXECUTE tally_reservation_insert(${insertParams(reservation).map(literal).join(', ')}); COMMIT`,
        )) as unknown as QueryResult[];
        open = false;
        return inserted.rows.length === 1;
      };
      const result = await work(read.rows.filter((r) => r.id !== null).map(toBudget), store);
      if (open) {
        open = false;
        void client.query('ROLLBACK').then(
          () => runner.release(),
          (err: Error) => discard(runner, err),
        );
      } else {
        await runner.release();
      }
      return result;
    } catch (err) {
      // The transaction's state is unknown: closing the connection rolls it back and lets the lock go.
      await discard(runner, err as Error);
      throw err;
    }
  }

  /**
   * Runs `work` in a transaction holding the org's reservation lock exclusively (a rebuild or a
   * repair, which must see every admission's row).
   */
  async withOrgLock<T>(orgId: string, mode: 'exclusive', work: (manager: EntityManager) => Promise<T>): Promise<T> {
    // One round trip: both are numbers, so the statement is built from no outside text.
    return this.inTransaction(`BEGIN; SELECT pg_advisory_xact_lock(${RESERVATION_LOCK_CLASS}, ${orgLockKey(orgId)})`, work);
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
}

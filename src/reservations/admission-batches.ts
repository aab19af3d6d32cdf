import { PoolClient, QueryResult } from 'pg';
import { DataSource, QueryRunner } from 'typeorm';
import { Budget } from '../budgets/budget.entity';
import { scopeKey } from '../budgets/budget-scope';
import { Reservation } from './reservation.entity';

/**
 * First key of pg_advisory_xact_lock(int, int) for reservations: admissions share it per org,
 * rebuilds and the reconciler take it alone. Its second key is any 32-bit hash, so no other lock
 * may use this class (the fold and partition maintenance use 7_240_117 with keys 1 and 2).
 */
export const RESERVATION_LOCK_CLASS = 7_240_118;

/** What became of one row of a batch: inserted, already stored (same request id), or refused. */
type RowOutcome = { inserted: boolean } | { error: unknown };

/**
 * Batches of admissions in one process that may be in PostgreSQL at once (each on its own
 * connection). With two, admissions from 8 connections waited ~1 ms at p50 for a slot (BENCHMARKS.md).
 */
const MAX_IN_FLIGHT = 4;
/** Admissions in one batch at most (the rest wait for the next). */
const MAX_BATCH = 64;

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

export function toBudget(row: Record<string, unknown>): Budget {
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

const RESERVATION_COLUMNS = `org_id, id, api_key_id, request_id, user_id, model, input_tokens, max_output_tokens, min_output_tokens,
    granted_output_tokens, status, reserved_tokens, reserved_cost_nano, holds, decision, expires_at, created_at`;

/** One reservation, for a revoked key's denial (outside any batch). */
export const INSERT_RESERVATION = `INSERT INTO reservations (${RESERVATION_COLUMNS})
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
  ON CONFLICT (org_id, api_key_id, request_id) DO NOTHING RETURNING id`;

/** The column types of {@link insertParams}, in order, for the batch's unnest. */
const INSERT_TYPES = [
  'varchar', 'varchar', 'varchar', 'varchar', 'varchar', 'varchar', 'bigint', 'bigint', 'bigint',
  'bigint', 'varchar', 'bigint', 'bigint', 'jsonb', 'jsonb', 'timestamptz', 'timestamptz',
];

/**
 * The budgets that may apply to each admission of a batch (numbered from 1 in `i`), for
 * `$1..$4` = the org, key, team and end-user scope ids of each (varchar[], null: none). One
 * (scope, scope_id) equality per admission and scope, an index probe each: a join on an OR of the
 * four scopes was planned, while the table had budgets not yet analyzed, as a read of every
 * budget for every batch.
 */
export const ADMISSION_BUDGETS_SQL = `SELECT m.i, ${BUDGET_COLUMNS}
   FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::varchar[]) WITH ORDINALITY AS m(org_key, apikey_key, team_key, user_key, i)
   CROSS JOIN LATERAL (VALUES ('org', m.org_key), ('apikey', m.apikey_key), ('team', m.team_key), ('user', m.user_key)) AS s(scope, scope_id)
   JOIN budgets b ON b.scope = s.scope AND b.scope_id = s.scope_id`;

/**
 * The batch's two prepared statements: {@link ADMISSION_BUDGETS_SQL} (its parameter types are its
 * own casts), and the insert of every reservation the batch stores.
 */
const PREPARE_BATCH =
  `PREPARE tally_reservation_budgets AS ${ADMISSION_BUDGETS_SQL}; ` +
  `PREPARE tally_reservation_insert(${INSERT_TYPES.map((t) => `${t}[]`).join(', ')}) AS
   INSERT INTO reservations (${RESERVATION_COLUMNS})
   SELECT * FROM unnest(${INSERT_TYPES.map((_t, i) => `$${i + 1}`).join(', ')})
   ON CONFLICT (org_id, api_key_id, request_id) DO NOTHING RETURNING id`;

/** The pool's connections that have the batch's statements. */
const PREPARED = new WeakSet<PoolClient>();

export function insertParams(r: Reservation): Array<string | null> {
  return [
    r.orgId, r.id, r.apiKeyId, r.requestId, r.userId, r.model, r.inputTokens, r.maxOutputTokens, r.minOutputTokens,
    r.grantedOutputTokens, r.status, r.reservedTokens, r.reservedCostNano, JSON.stringify(r.holds), JSON.stringify(r.decision),
    r.expiresAt?.toISOString() ?? null, r.createdAt.toISOString(),
  ];
}

/** What an admission does inside its batch's transaction: decide, then `store` its reservation (or not). */
export type AdmissionWork<T> = (budgets: Budget[], store: (reservation: Reservation) => Promise<boolean>) => Promise<T>;

export interface AdmissionRequest {
  orgId: string;
  apiKeyId: string;
  scopes: { teamId: string | null; userId: string | null };
}

/** One admission in a batch. `done` once it stored its row or finished without storing. */
interface Member {
  request: AdmissionRequest;
  work: AdmissionWork<unknown>;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
  done: boolean;
  row?: Reservation;
  stored?: { resolve: (inserted: boolean) => void; reject: (err: unknown) => void };
}

/** `ARRAY[…]::type[]` of escaped literals (NULL for null): values go into the statement's text, which keeps it one simple-protocol round trip. */
function arrayLiteral(client: PoolClient, values: Array<string | null>, type: string): string {
  return `ARRAY[${values.map((v) => (v === null ? 'NULL' : client.escapeLiteral(v))).join(', ')}]::${type}[]`;
}

/**
 * Closes the connection instead of returning it to the pool: its transaction's state is unknown.
 * (TypeORM's PostgresQueryRunner passes the error to the pg pool, which then destroys the client.)
 */
function discard(runner: QueryRunner, err: Error): Promise<void> {
  return (runner as unknown as { releasePostgresConnection(err: Error): Promise<void> }).releasePostgresConnection(err);
}

/**
 * Group commit for admissions. The admissions that arrive while earlier ones are in PostgreSQL
 * share one transaction on one connection, in two round trips whatever their number:
 *
 * 1. `BEGIN`, the shared reservation lock of each of their orgs (in lock-key order, so two
 *    batches and a rebuild never wait on each other in a circle), and the budgets of each;
 * 2. after every admission has run its Redis step and handed over its row (or none), one insert
 *    of all the rows and `COMMIT`, which lets the locks go.
 *
 * A rebuild takes its org's lock exclusively, so it still sees the row of every admission that
 * granted from counters it is about to replace. One admission's failure is its own; a failure of
 * PostgreSQL fails the batch (the connection is closed, which rolls it back: nothing is written).
 */
export class AdmissionBatches {
  private waiting: Member[] = [];
  private inFlight = 0;
  private scheduled = false;

  constructor(private readonly dataSource: DataSource) {}

  run<T>(request: AdmissionRequest, work: AdmissionWork<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.waiting.push({ request, work: work as AdmissionWork<unknown>, resolve: resolve as (value: unknown) => void, reject, done: false });
      this.schedule();
    });
  }

  /** Starts a batch after this turn of the event loop (so the admissions of one turn go together), when a slot is free. */
  private schedule(): void {
    if (this.scheduled || this.inFlight >= MAX_IN_FLIGHT || this.waiting.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.inFlight >= MAX_IN_FLIGHT || this.waiting.length === 0) return;
      const batch = this.waiting.splice(0, MAX_BATCH);
      this.inFlight++;
      void this.execute(batch).finally(() => {
        this.inFlight--;
        this.schedule();
      });
      this.schedule();
    });
  }

  private async execute(batch: Member[]): Promise<void> {
    const runner = this.dataSource.createQueryRunner();
    let client: PoolClient;
    try {
      client = (await runner.connect()) as PoolClient;
    } catch (err) {
      for (const m of batch) m.reject(err);
      await runner.release().catch(() => undefined);
      return;
    }
    let budgets: Budget[][];
    try {
      if (!PREPARED.has(client)) {
        await client.query(PREPARE_BATCH);
        PREPARED.add(client);
      }
      const locks = [...new Set(batch.map((m) => orgLockKey(m.request.orgId)))].sort((a, b) => a - b);
      const keys = batch.map(({ request: { orgId, apiKeyId, scopes } }) => [
        orgId,
        apiKeyId,
        scopes.teamId === null ? null : scopeKey('team', orgId, scopes.teamId),
        scopes.userId === null ? null : scopeKey('user', orgId, scopes.userId),
      ]);
      const results = (await client.query(
        `BEGIN; SELECT count(pg_advisory_xact_lock_shared(${RESERVATION_LOCK_CLASS}, k)) FROM unnest(ARRAY[${locks.join(', ')}]::int[]) k; ` +
          `EXECUTE tally_reservation_budgets(${[0, 1, 2, 3].map((c) => arrayLiteral(client, keys.map((k) => k[c]), 'varchar')).join(', ')})`,
      )) as unknown as QueryResult<Record<string, unknown>>[];
      budgets = batch.map(() => []);
      for (const row of results[2].rows) budgets[Number(row.i) - 1].push(toBudget(row));
    } catch (err) {
      await discard(runner, err as Error);
      for (const m of batch) m.reject(err);
      return;
    }

    await new Promise<void>((allDone) => {
      const finish = (m: Member) => {
        m.done = true;
        if (batch.every((b) => b.done)) allDone();
      };
      batch.forEach((m, i) => {
        const store = (reservation: Reservation) =>
          new Promise<boolean>((resolve, reject) => {
            if (m.done) return reject(new Error('store() called twice or after the admission ended'));
            m.row = reservation;
            m.stored = { resolve, reject };
            finish(m);
          });
        m.work(budgets[i], store).then(
          (value) => {
            m.resolve(value);
            if (!m.done) finish(m);
          },
          (err) => {
            m.reject(err);
            if (!m.done) finish(m);
          },
        );
      });
    });

    const storing = batch.filter((m) => m.row !== undefined);
    try {
      if (storing.length === 0) {
        await client.query('ROLLBACK');
      } else {
        const outcomes = await this.insertAndCommit(client, storing);
        storing.forEach((m, i) => ('error' in outcomes[i] ? m.stored!.reject(outcomes[i].error) : m.stored!.resolve(outcomes[i].inserted)));
      }
      await runner.release();
    } catch (err) {
      await discard(runner, err as Error);
      for (const m of storing) m.stored!.reject(err);
    }
  }

  /**
   * Inserts the batch's rows in one statement and commits, in one round trip. When that statement
   * fails, its rows are inserted one by one, each behind its own savepoint, so a row PostgreSQL
   * refuses fails its own admission only (the others still commit). Per row: inserted (true), its
   * request id stored already (false), or the error that refused it; nothing before the COMMIT.
   * A COMMIT that fails (a deferred constraint) ends the transaction: that error fails them all.
   */
  private async insertAndCommit(client: PoolClient, storing: Member[]): Promise<RowOutcome[]> {
    const statement = (members: Member[]) => {
      const columns = members.map((m) => insertParams(m.row!));
      return `EXECUTE tally_reservation_insert(${INSERT_TYPES.map((t, c) => arrayLiteral(client, columns.map((p) => p[c]), t)).join(', ')})`;
    };
    const outcome = (members: Member[], result: QueryResult<{ id: string }>): RowOutcome[] => {
      const ids = new Set(result.rows.map((r) => r.id));
      return members.map((m) => ({ inserted: ids.has(m.row!.id) }));
    };
    try {
      const [, inserted] = (await client.query(`SAVEPOINT batch; ${statement(storing)}; COMMIT`)) as unknown as QueryResult<{ id: string }>[];
      return outcome(storing, inserted);
    } catch (err) {
      if (storing.length === 1) throw err;
      // The insert failed and the COMMIT after it did not run: back to the savepoint, row by row.
      // When the COMMIT itself failed there is no transaction left to go back into: its error stands.
      await client.query('ROLLBACK TO SAVEPOINT batch').catch(() => {
        throw err;
      });
    }
    const outcomes: RowOutcome[] = [];
    for (const m of storing) {
      try {
        const [, inserted] = (await client.query(`SAVEPOINT one; ${statement([m])}; RELEASE SAVEPOINT one`)) as unknown as QueryResult<{ id: string }>[];
        outcomes.push(...outcome([m], inserted));
      } catch (error) {
        await client.query('ROLLBACK TO SAVEPOINT one');
        outcomes.push({ error });
      }
    }
    await client.query('COMMIT');
    return outcomes;
  }
}

import { PoolClient, QueryResult } from 'pg';
import { DataSource, QueryRunner } from 'typeorm';
import { Budget } from '../budgets/budget.entity';
import { scopeKey } from '../budgets/budget-scope';
import { scopeFence } from './reservation-fence.entity';
import { Reservation } from './reservation.entity';
import { GENERIC_PLAN, INSERT_TYPES, insertParams, orgLockKey, PREPARE_BATCH, RESERVATION_LOCK_CLASS, toBudget } from './admission-sql';

/**
 * Batches of admissions in one process that may be in PostgreSQL at once (each on its own
 * connection). With two, admissions from 8 connections waited ~1 ms at p50 for a slot (BENCHMARKS.md).
 */
const MAX_IN_FLIGHT = 4;
/** Admissions in one batch at most (the rest wait for the next). */
const MAX_BATCH = 64;

/** The pool's connections that have the batch's statements. */
const PREPARED = new WeakSet<PoolClient>();

/** What became of a row handed to `store`: stored; its request id stored already; or decided from a fence that moved (not stored: decide again). */
export type StoreOutcome = 'inserted' | 'duplicate' | 'stale';

export interface Stored {
  outcome: StoreOutcome;
  /** `stale`: each fence that moved, with its value now (`fence=value`). */
  moved: string[];
}

/**
 * Stores an admission's row, with the fences it decided from (a budget id → the generation of
 * that budget's counters the Redis admission reported; the fences of the budget targets its
 * budgets were read under are added here).
 */
export type StoreRow = (reservation: Reservation, fences: Record<string, string>) => Promise<Stored>;

/** What an admission does in its batch: decide from the budgets, then `store` its reservation (or not). */
export type AdmissionWork<T> = (budgets: Budget[], store: StoreRow) => Promise<T>;

export interface AdmissionRequest {
  orgId: string;
  apiKeyId: string;
  scopes: { teamId: string | null; userId: string | null };
}

/** One admission in a batch. `done` once it handed over its row or finished without one. */
interface Member {
  request: AdmissionRequest;
  work: AdmissionWork<unknown>;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
  done: boolean;
  cacheKey: string;
  /** The fences of its budget targets, as its budget list was read under. */
  scopeFences?: Record<string, string>;
  row?: Reservation;
  fences?: Record<string, string>;
  stored?: { resolve: (stored: Stored) => void; reject: (err: unknown) => void };
}

/** What became of one row of a batch's insert, or the error PostgreSQL refused it with. */
type RowOutcome = Stored | { error: unknown };

/** The budget scopes of an admission, in the order of {@link ADMISSION_BUDGETS_SQL}'s parameters. */
const SCOPES = ['org', 'apikey', 'team', 'user'] as const;

/** Budget lists kept per (org, key, team, end user), each with the fences of those four budget targets it was read under. */
const CACHE_MAX = 50_000;

/** `ARRAY[…]::type[]` of escaped literals (NULL for null): values go into the statement's text, which keeps it one simple-protocol round trip. */
function arrayLiteral(client: PoolClient, values: Array<string | null>, type: string): string {
  return `ARRAY[${values.map((v) => (v === null ? 'NULL' : client.escapeLiteral(v))).join(', ')}]::${type}[]`;
}

/**
 * Closes the connection instead of returning it to the pool: its transaction's state is unknown.
 * (TypeORM's PostgresQueryRunner passes the error to the pool, which then destroys the client.)
 */
function discard(runner: QueryRunner, err: Error): Promise<void> {
  return (runner as unknown as { releasePostgresConnection(err: Error): Promise<void> }).releasePostgresConnection(err);
}

/**
 * Group commit for admissions, with no lock or transaction held while they decide. The
 * admissions that arrive while earlier ones are in flight form a batch:
 *
 * 1. their budgets (of the org, the key, its team and the end user), from a per-process cache,
 *    or read in one round trip with the fences of those four budget targets (read first: a
 *    budget changed in between only makes the row stale);
 * 2. each decides (its Redis step), and hands over its row with the fences it decided from;
 * 3. one round trip: `BEGIN`, the shared reservation lock of each org (in lock-key order), the
 *    insert of every row whose fences still hold (it answers each row's outcome), `COMMIT`.
 *
 * A rebuild or a repair of an org's counters takes the lock exclusively and bumps the fence of
 * each budget it loads before reading the holds: a row that granted from the counters it
 * replaces is either committed before it (and seen) or finds its fence moved (not stored; the
 * admission removes its holds and decides again). A budget change bumps the fence of its target
 * (trigger `budgets_fence`), so a decision from a cached list that is out of date is never stored
 * either. One admission's failure is its own; a failure of PostgreSQL fails the batch's
 * admissions (the connection is closed, which rolls it back: nothing is written).
 */
export class AdmissionBatches {
  private waiting: Member[] = [];
  private inFlight = 0;
  private scheduled = false;
  private readonly cache = new Map<string, { budgets: Budget[]; fences: Record<string, string> }>();

  constructor(private readonly dataSource: DataSource) {}

  run<T>(request: AdmissionRequest, work: AdmissionWork<T>): Promise<T> {
    const { orgId, apiKeyId, scopes } = request;
    const cacheKey = `${orgId}\n${apiKeyId}\n${scopes.teamId ?? '\u0000'}\n${scopes.userId ?? '\u0000'}`;
    return new Promise<T>((resolve, reject) => {
      this.waiting.push({ request, work: work as AdmissionWork<unknown>, resolve: resolve as (value: unknown) => void, reject, done: false, cacheKey });
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
    let budgets: Budget[][];
    try {
      budgets = await this.budgetsOf(batch);
    } catch (err) {
      for (const m of batch) m.reject(err);
      return;
    }

    await new Promise<void>((allDone) => {
      const finish = (m: Member) => {
        m.done = true;
        if (batch.every((b) => b.done)) allDone();
      };
      batch.forEach((m, i) => {
        const store: StoreRow = (reservation, fences) =>
          new Promise<Stored>((resolve, reject) => {
            if (m.done) return reject(new Error('store() called twice or after the admission ended'));
            m.row = reservation;
            m.fences = { ...fences, ...m.scopeFences };
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
    if (storing.length === 0) return;
    let outcomes: RowOutcome[];
    try {
      outcomes = await this.onConnection((client) => this.insertAndCommit(client, storing));
    } catch (err) {
      for (const m of storing) m.stored!.reject(err);
      return;
    }
    storing.forEach((m, i) => {
      const o = outcomes[i];
      if ('error' in o) return m.stored!.reject(o.error);
      // Decided from a fence that moved: the next try reads the budgets again.
      if (o.outcome === 'stale') this.cache.delete(m.cacheKey);
      m.stored!.resolve(o);
    });
  }

  /** Each admission's budgets (and the fences they were read under): from the cache, or all the missing ones in one round trip. */
  private async budgetsOf(batch: Member[]): Promise<Budget[][]> {
    // The entries this batch uses, taken now: another batch may drop or evict them while this one reads.
    const entries = new Map<string, { budgets: Budget[]; fences: Record<string, string> }>();
    for (const m of batch) {
      const entry = this.cache.get(m.cacheKey);
      if (!entry) continue;
      entries.set(m.cacheKey, entry);
      // Most recently used last: eviction takes the oldest first.
      this.cache.delete(m.cacheKey);
      this.cache.set(m.cacheKey, entry);
    }
    const missing = [...new Map(batch.filter((m) => !entries.has(m.cacheKey)).map((m) => [m.cacheKey, m.request])).entries()];
    if (missing.length > 0) {
      // The scope id of each target, as budgets.scope_id has it: org, key, team, end user (null: none).
      const targets = missing.map(([, { orgId, apiKeyId, scopes }]) => [
        orgId,
        apiKeyId,
        scopes.teamId === null ? null : scopeKey('team', orgId, scopes.teamId),
        scopes.userId === null ? null : scopeKey('user', orgId, scopes.userId),
      ]);
      const fenceNames = targets.map((t) => SCOPES.flatMap((scope, c) => (t[c] === null ? [] : [scopeFence(scope, t[c]!)])));
      const fenceOrgs = missing.flatMap(([, r], i) => fenceNames[i].map(() => r.orgId));
      // The fences first: a budget changed between the two reads makes the rows stale, never wrong.
      const results = await this.onConnection(
        async (client) =>
          (await client.query(
            `EXECUTE tally_reservation_fences(${arrayLiteral(client, fenceOrgs, 'varchar')}, ${arrayLiteral(client, fenceNames.flat(), 'varchar')}); ` +
              `EXECUTE tally_reservation_budgets(${[0, 1, 2, 3].map((c) => arrayLiteral(client, targets.map((t) => t[c]), 'varchar')).join(', ')})`,
          )) as unknown as QueryResult<Record<string, unknown>>[],
      );
      const stored = new Map(results[0].rows.map((r) => [`${String(r.org_id)}\n${String(r.fence)}`, String(r.value)]));
      const read = missing.map(([, r], i) => ({
        budgets: [] as Budget[],
        fences: Object.fromEntries(fenceNames[i].map((name) => [name, stored.get(`${r.orgId}\n${name}`) ?? '0'])),
      }));
      for (const row of results[1].rows) read[Number(row.i) - 1].budgets.push(toBudget(row));
      missing.forEach(([key], i) => {
        if (this.cache.size >= CACHE_MAX) this.cache.delete(this.cache.keys().next().value!);
        this.cache.set(key, read[i]);
        entries.set(key, read[i]);
      });
    }
    return batch.map((m) => {
      const entry = entries.get(m.cacheKey)!;
      m.scopeFences = entry.fences;
      return entry.budgets;
    });
  }

  /**
   * Runs `work` on a pooled connection that has the batch's prepared statements. When `work`
   * throws, the connection is closed (its transaction's state is unknown) and the error stands.
   */
  private async onConnection<T>(work: (client: PoolClient) => Promise<T>): Promise<T> {
    const runner = this.dataSource.createQueryRunner();
    let client: PoolClient;
    try {
      client = (await runner.connect()) as PoolClient;
    } catch (err) {
      await runner.release().catch(() => undefined);
      throw err;
    }
    let result: T;
    try {
      if (!PREPARED.has(client)) {
        await client.query(PREPARE_BATCH);
        PREPARED.add(client);
      }
      result = await work(client);
    } catch (err) {
      await discard(runner, err as Error);
      throw err;
    }
    await runner.release();
    return result;
  }

  /**
   * In one round trip: the orgs' locks, shared; the insert of the rows whose fences hold, which
   * tells each row's outcome; COMMIT. When that fails, the rows go again one by one in a new
   * transaction, each behind its own savepoint, so a row PostgreSQL refuses fails its own
   * admission only (the others still commit). A COMMIT that fails there (a deferred constraint)
   * fails them all with its error.
   */
  private async insertAndCommit(client: PoolClient, storing: Member[]): Promise<RowOutcome[]> {
    const insert = (members: Member[]) => {
      const columns = members.map((m) => insertParams(m.row!));
      const fences = members.map((m) => JSON.stringify(m.fences));
      return `EXECUTE tally_reservation_insert(${[...INSERT_TYPES.map((t, c) => arrayLiteral(client, columns.map((p) => p[c]), t)), arrayLiteral(client, fences, 'jsonb')].join(', ')})`;
    };
    const outcomes = (members: Member[], result: QueryResult<{ id: string } & Stored>): RowOutcome[] => {
      const byId = new Map(result.rows.map((r) => [r.id, { outcome: r.outcome, moved: r.moved }]));
      return members.map((m) => byId.get(m.row!.id)!);
    };
    const locks = [...new Set(storing.map((m) => orgLockKey(m.row!.orgId)))].sort((a, b) => a - b);
    // The insert's plan is made once per connection (see GENERIC_PLAN), for this transaction only.
    const begin = `BEGIN; ${GENERIC_PLAN}; SELECT count(pg_advisory_xact_lock_shared(${RESERVATION_LOCK_CLASS}, k)) FROM unnest(ARRAY[${locks.join(', ')}]::int[]) k`;
    try {
      const results = (await client.query(`${begin}; ${insert(storing)}; COMMIT`)) as unknown as QueryResult<{ id: string } & Stored>[];
      return outcomes(storing, results[3]);
    } catch (err) {
      if (storing.length === 1) throw err;
      // Whatever failed, nothing of it is committed: end what is left of it, then row by row.
      await client.query('ROLLBACK').catch(() => {
        throw err;
      });
    }
    await client.query(begin);
    const rows: RowOutcome[] = [];
    for (const m of storing) {
      try {
        const results = (await client.query(`SAVEPOINT one; ${insert([m])}; RELEASE SAVEPOINT one`)) as unknown as QueryResult<{ id: string } & Stored>[];
        rows.push(...outcomes([m], results[1]));
      } catch (error) {
        await client.query('ROLLBACK TO SAVEPOINT one');
        rows.push({ error });
      }
    }
    await client.query('COMMIT');
    return rows;
  }
}

import { Budget } from '../budgets/budget.entity';
import { Reservation } from './reservation.entity';

/* The SQL of admissions (see AdmissionBatches): the reservation lock's keys, the budget and fence reads, and the fenced insert. */

/**
 * First key of pg_advisory_xact_lock(int, int) for reservations: admissions share it per org,
 * rebuilds and the reconciler take it alone. Its second key is any 32-bit hash, so no other lock
 * may use this class (the fold and partition maintenance use 7_240_117 with keys 1 and 2, the
 * creation of partitions 7_240_119).
 */
export const RESERVATION_LOCK_CLASS = 7_240_118;

/** The org's lock key: a 32-bit FNV-1a hash of its id, as a signed integer (inlined into SQL as a number). */
export function orgLockKey(orgId: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < orgId.length; i++) {
    hash ^= orgId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash | 0;
}

const BUDGET_COLUMNS = `b.id, b.scope, b.scope_id, b.org_id, b.owner, b.period, b.limit_kind, b.limit_value::text AS limit_value, b.thresholds, b.timezone, b.counter_epoch::text AS counter_epoch`;

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
    counterEpoch: row.counter_epoch,
  });
}

const RESERVATION_COLUMNS = `org_id, id, api_key_id, request_id, user_id, model, input_tokens, max_output_tokens, min_output_tokens,
    granted_output_tokens, status, reserved_tokens, reserved_cost_nano, holds, decision, expires_at, created_at`;

/** One reservation, for a revoked key's denial (outside any batch). */
export const INSERT_RESERVATION = `INSERT INTO reservations (${RESERVATION_COLUMNS})
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
  ON CONFLICT (org_id, api_key_id, request_id) DO NOTHING RETURNING id`;

/** The column types of {@link insertParams}, in order, for the batch's unnest. */
export const INSERT_TYPES = [
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
 * The fences of a row that moved since it decided (`fence=value now`), from each value it decided
 * from (a JSON object `{fence: value}`; a missing fence row reads as 0). For `u.org_id` and
 * `u.fences`. One primary-key probe per fence: a join was planned as a scan of the org's fences
 * for every row.
 */
const MOVED_FENCES = `ARRAY(SELECT m.key || '=' || m.stored FROM (
      SELECT e.key, e.value::bigint AS decided,
             COALESCE((SELECT f.value FROM reservation_fences f WHERE f.org_id = u.org_id AND f.fence = e.key), 0) AS stored
      FROM jsonb_each_text(u.fences) e) m
    WHERE m.stored <> m.decided)`;

/** The stored fences among (`$1`, `$2`) = (org ids, fence names) (see `scopeFence`); a missing one is 0. */
const SCOPE_FENCES_SQL = `SELECT f.org_id, f.fence, f.value::text AS value
   FROM unnest($1::varchar[], $2::varchar[]) AS q(org_id, fence)
   JOIN reservation_fences f ON f.org_id = q.org_id AND f.fence = q.fence`;

/**
 * The batch's prepared statements: {@link SCOPE_FENCES_SQL} and {@link ADMISSION_BUDGETS_SQL}
 * (their parameter types are their own casts), and the insert of every row whose fences hold,
 * which answers each row's outcome (by id) in the same statement (see StoreOutcome; the other
 * statement's rows it sees are those committed before it began).
 */
export const PREPARE_BATCH =
  `PREPARE tally_reservation_fences AS ${SCOPE_FENCES_SQL}; ` +
  `PREPARE tally_reservation_budgets AS ${ADMISSION_BUDGETS_SQL}; ` +
  `PREPARE tally_reservation_insert(${INSERT_TYPES.map((t) => `${t}[]`).join(', ')}, jsonb[]) AS
   WITH u AS MATERIALIZED (
     SELECT u.*, ${MOVED_FENCES} AS moved
     FROM unnest(${INSERT_TYPES.map((_t, i) => `$${i + 1}`).join(', ')}, $${INSERT_TYPES.length + 1}) AS u(${RESERVATION_COLUMNS}, fences)
   ), inserted AS (
     INSERT INTO reservations (${RESERVATION_COLUMNS})
     SELECT ${RESERVATION_COLUMNS} FROM u WHERE cardinality(moved) = 0
     ON CONFLICT (org_id, api_key_id, request_id) DO NOTHING RETURNING id
   )
   SELECT u.id, CASE
       WHEN i.id IS NOT NULL THEN 'inserted'
       -- Stored already, by this very admission (a retry of a batch whose COMMIT went through).
       WHEN EXISTS (SELECT 1 FROM reservations r WHERE r.org_id = u.org_id AND r.id = u.id) THEN 'inserted'
       -- Its request id is stored (by another admission): answered with that one, fences or not.
       WHEN cardinality(u.moved) = 0
         OR EXISTS (SELECT 1 FROM reservations r WHERE r.org_id = u.org_id AND r.api_key_id = u.api_key_id AND r.request_id = u.request_id) THEN 'duplicate'
       ELSE 'stale' END AS outcome,
     u.moved
   FROM u LEFT JOIN inserted i ON i.id = u.id`;

/**
 * Run in the batch's transaction before the insert: PostgreSQL would plan the prepared insert
 * again at every execution (a custom plan looks cheaper to it, the arrays' lengths being known),
 * ~0.5 ms of its CPU per batch, more than the insert itself; the generic plan probes the same
 * indexes.
 */
export const GENERIC_PLAN = 'SET LOCAL plan_cache_mode = force_generic_plan';

export function insertParams(r: Reservation): Array<string | null> {
  return [
    r.orgId, r.id, r.apiKeyId, r.requestId, r.userId, r.model, r.inputTokens, r.maxOutputTokens, r.minOutputTokens,
    r.grantedOutputTokens, r.status, r.reservedTokens, r.reservedCostNano, JSON.stringify(r.holds), JSON.stringify(r.decision),
    r.expiresAt?.toISOString() ?? null, r.createdAt.toISOString(),
  ];
}

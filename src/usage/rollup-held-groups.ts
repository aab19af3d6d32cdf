import { SqlRunner } from '../database/sql-runner';
import { DELTA_COLUMNS, HELD_DELTAS_TABLE, HELD_GROUP_KEY, HELD_GROUPS_TABLE, inHeldGroupSql, JOURNAL_TABLE } from './pending-deltas';
import { MEASURES, rollup, rollupBucketSql, ROLLUPS } from './rollups';

/**
 * Held groups (SPEC §8): the statements that hold a rollup group whose sums would overflow a
 * bigint, and release it once they fit. Every statement here runs under the fold lock.
 *
 * A group is a row of usage_rollups_day_by_key: an org's UTC day, key, team, model, project,
 * batch and tier. Every row of every rollup lies inside exactly one such group, so holding by it
 * sets aside whatever overflows, at any granularity, and nothing of the org's other keys, models
 * or days. While a group is held, the fold moves its journal rows into usage_rollup_deltas_held
 * instead of the rollups (foldSql); readers add the held rows as they add the journal's.
 */

const MAX_BIGINT = '9223372036854775807';
const dayOf = (column: string) => rollupBucketSql(rollup('dayByKey'), column);
const groupColumns = (alias: string) => HELD_GROUP_KEY.map((c) => (c === 'bucket_start' ? `${dayOf(`${alias}.bucket_start`)} AS bucket_start` : `${alias}.${c}`));
const sameGroup = (a: string, b: string) => HELD_GROUP_KEY.map((c) => `${a}.${c} = ${b}.${c}`).join(' AND ');

/**
 * A SELECT of (the group's key…, measure): for every rollup, the rows that the deltas of the CTE
 * `pending` would add to, whose sum of a measure with the row already there exceeds a bigint
 * (compared as numeric, which does not overflow). All measures are non-negative, so a group
 * overflows here if any subset of its pending deltas fails a fold. Per-minute rows only get the
 * deltas from $1 on, as in the fold. Checking every rollup, not only the day-by-key one whose
 * row bounds the others, keeps this right where a finer row is larger than it should be.
 */
function overflowsSql(): string {
  return ROLLUPS.map((r) => {
    const key = ['bucket_start', ...r.dimensions];
    const sums = `SELECT ${[`${rollupBucketSql(r)} AS bucket_start`, ...r.dimensions, ...MEASURES.map((m) => `SUM(${m}) AS ${m}`)].join(', ')}
        FROM pending${r.granularity === 'minute' ? ' WHERE bucket_start >= $1' : ''} GROUP BY ${key.map((_c, i) => i + 1).join(', ')}`;
    const totals = MEASURES.map((m) => `('${m}', p.${m} + COALESCE(t.${m}, 0))`).join(', ');
    return `SELECT ${groupColumns('p').join(', ')}, o.measure
      FROM (${sums}) p LEFT JOIN ${r.table} t ON ${key.map((c) => `t.${c} = p.${c}`).join(' AND ')}
      CROSS JOIN LATERAL (VALUES ${totals}) o(measure, total)
      WHERE o.total > ${MAX_BIGINT}`;
  }).join('\n      UNION ALL ');
}

/** A held group, as logged (no secrets: the key's id, not the key). */
export interface HeldGroup {
  orgId: string;
  /** The UTC day, YYYY-MM-DD. */
  day: string;
  apiKeyId: string;
  model: string;
  /** The measures whose sum overflows (newly held groups only). */
  measures?: string[];
}

interface GroupRow {
  org_id: string;
  bucket_start: Date;
  api_key_id: string;
  model: string;
  measures?: string;
}

const heldGroup = (row: GroupRow): HeldGroup => ({
  orgId: row.org_id,
  day: new Date(row.bucket_start).toISOString().slice(0, 10),
  apiKeyId: row.api_key_id,
  model: row.model,
  ...(row.measures === undefined ? {} : { measures: row.measures.split(',') }),
});

/**
 * Holds every group whose rollup rows plus the fold's journal rows (at the ctids `ctids`, the
 * text of a tid[]) overflow a bigint sum, in one statement; returns the groups it newly held
 * (none: the overflow is not one of a group's sums). Deltas before `minuteFrom` are not added to
 * the per-minute rollup, as in the fold.
 */
export async function holdOverflowingGroups(runner: SqlRunner, minuteFrom: Date, ctids: string): Promise<HeldGroup[]> {
  const key = HELD_GROUP_KEY.join(', ');
  const rows: GroupRow[] = await runner.query(
    `WITH pending AS (SELECT * FROM ${JOURNAL_TABLE} WHERE ctid = ANY($2::tid[])),
       overflows AS (SELECT ${key}, string_agg(DISTINCT measure, ',' ORDER BY measure) AS measures FROM (
         ${overflowsSql()}) o GROUP BY ${key}),
       held AS (INSERT INTO ${HELD_GROUPS_TABLE} (${key}) SELECT ${key} FROM overflows ON CONFLICT DO NOTHING RETURNING ${key})
     SELECT h.*, o.measures FROM held h JOIN overflows o ON ${sameGroup('h', 'o')}`,
    [minuteFrom.toISOString(), ctids],
  );
  return rows.map(heldGroup);
}

/** True when some group is held (a fold then diverts). */
export async function anyHeldGroups(runner: SqlRunner): Promise<boolean> {
  const [row] = await runner.query(`SELECT EXISTS (SELECT 1 FROM ${HELD_GROUPS_TABLE}) AS held`);
  return row.held;
}

/** A held group's whole key, as read from the table: what {@link releaseFittingGroups} is given. */
export type HeldGroupKey = Record<(typeof HELD_GROUP_KEY)[number], unknown>;

/**
 * The held groups whose day-by-key row plus their held and journal rows fit a bigint in every
 * measure: the ones a release may take back. A read, without the fold lock (folds go on): one
 * pass over the held and journal rows of the orgs with held groups, summed by group (a lookup
 * per group rescanned the whole org-day for each: 2 minutes for 1,000 groups beside 200k rows).
 * The day-by-key row bounds every finer row of the group, so a group that fails here cannot be
 * released; one that passes is checked again at every granularity, under the lock, by
 * {@link releaseFittingGroups}.
 */
export async function heldGroupsThatFit(runner: SqlRunner): Promise<HeldGroupKey[]> {
  const columns = [...HELD_GROUP_KEY, ...MEASURES].join(', ');
  const rows = (table: string) => `SELECT ${columns} FROM ${table} WHERE org_id IN (SELECT org_id FROM ${HELD_GROUPS_TABLE})`;
  return runner.query(
    `WITH sums AS (
       SELECT ${[...groupColumns('x'), ...MEASURES.map((m) => `SUM(x.${m}) AS ${m}`)].join(', ')}
       FROM (${rows(HELD_DELTAS_TABLE)} UNION ALL ${rows(JOURNAL_TABLE)}) x
       GROUP BY ${HELD_GROUP_KEY.map((_c, i) => i + 1).join(', ')})
     SELECT ${HELD_GROUP_KEY.map((c) => `g.${c}`).join(', ')} FROM ${HELD_GROUPS_TABLE} g
     LEFT JOIN sums s ON ${sameGroup('s', 'g')}
     LEFT JOIN ${rollup('dayByKey').table} r ON ${sameGroup('r', 'g')}
     WHERE ${MEASURES.map((m) => `COALESCE(s.${m}, 0) + COALESCE(r.${m}, 0) <= ${MAX_BIGINT}`).join(' AND ')}`,
  );
}

/**
 * Releases those of `candidates` (from {@link heldGroupsThatFit}) that are still held and whose
 * rows fit at every granularity, in one statement under the fold lock: each one's held rows go
 * back into the journal, as they were, for the next fold, and the group is no longer held. The
 * group's journal rows count: they reach the rollups too. Returns the released groups and the
 * rows moved back.
 */
export async function releaseFittingGroups(runner: SqlRunner, minuteFrom: Date, candidates: HeldGroupKey[]): Promise<{ groups: HeldGroup[]; deltas: number }> {
  const columns = DELTA_COLUMNS.join(', ');
  const from = (table: string) => `SELECT ${DELTA_COLUMNS.map((c) => `d.${c}`).join(', ')} FROM candidates g JOIN ${table} d ON ${inHeldGroupSql('d', 'g')}`;
  const [row] = await runner.query(
    `WITH candidates AS (
         SELECT g.* FROM ${HELD_GROUPS_TABLE} g JOIN json_populate_recordset(NULL::${HELD_GROUPS_TABLE}, $2::json) c ON ${sameGroup('g', 'c')}),
       pending AS (${from(HELD_DELTAS_TABLE)} UNION ALL ${from(JOURNAL_TABLE)}),
       overflows AS (SELECT DISTINCT ${HELD_GROUP_KEY.join(', ')} FROM (
         ${overflowsSql()}) o),
       released AS (
         DELETE FROM ${HELD_GROUPS_TABLE} g USING candidates c
         WHERE ${sameGroup('g', 'c')} AND NOT EXISTS (SELECT 1 FROM overflows o WHERE ${sameGroup('o', 'g')}) RETURNING g.*),
       moved AS (DELETE FROM ${HELD_DELTAS_TABLE} d USING released g WHERE ${inHeldGroupSql('d', 'g')} RETURNING d.*),
       back AS (INSERT INTO ${JOURNAL_TABLE} (${columns}) SELECT ${columns} FROM moved RETURNING 1)
     SELECT (SELECT count(*) FROM back)::int AS deltas,
       COALESCE((SELECT json_agg(json_build_object('org_id', org_id, 'bucket_start', bucket_start, 'api_key_id', api_key_id, 'model', model)) FROM released), '[]') AS groups`,
    [minuteFrom.toISOString(), JSON.stringify(candidates)],
  );
  return { groups: (row.groups as GroupRow[]).map(heldGroup), deltas: row.deltas };
}

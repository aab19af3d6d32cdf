import { DIMENSIONS, KEY_DIMENSIONS, MEASURES } from './rollups';

/**
 * Where rollup deltas wait before they are in the rollups (SPEC §8): the journal, which ingest
 * appends to and the folder drains, and the held rows, which the folder moves aside instead of
 * folding while their day-by-key group is held (its sums would overflow a rollup's bigint: see
 * rollup-held-groups.ts). Both tables have the same columns; a delta is in exactly one of the
 * journal, the held rows or the rollups at any moment, so readers add both tables to the rollups.
 */
export const JOURNAL_TABLE = 'usage_rollup_deltas';
export const HELD_DELTAS_TABLE = 'usage_rollup_deltas_held';
/** The held groups: the key of usage_rollups_day_by_key (its bucket_start is the UTC day). */
export const HELD_GROUPS_TABLE = 'usage_rollup_held_groups';

/** The tables of deltas not in the rollups: what a reader adds to the rollups, with the same filters. */
export const PENDING_TABLES = [JOURNAL_TABLE, HELD_DELTAS_TABLE] as const;

/** A delta's key: its minute and every dimension. */
export const DELTA_KEY = ['org_id', 'bucket_start', ...DIMENSIONS.filter((d) => d !== 'org_id')] as const;
/** Every column of both tables, in one order, for moving rows from one to the other. */
export const DELTA_COLUMNS = [...DELTA_KEY, ...MEASURES, 'ingested_at'] as const;

/** A held group's key, the primary key of usage_rollups_day_by_key and of the held groups. */
export const HELD_GROUP_KEY = ['org_id', 'bucket_start', ...KEY_DIMENSIONS.filter((d) => d !== 'org_id')] as const;

/**
 * SQL that is true when the delta `row` (a table alias) belongs to the held group `group`: its
 * minute is in the group's UTC day (a range, so that an index or a hash on the other columns
 * serves and no day is computed per row) and every other key column is equal.
 */
export function inHeldGroupSql(row: string, group: string): string {
  return [
    ...HELD_GROUP_KEY.filter((c) => c !== 'bucket_start').map((c) => `${group}.${c} = ${row}.${c}`),
    `${row}.bucket_start >= ${group}.bucket_start`,
    // 24 hours, not '1 day': the length of a day interval depends on the session's time zone.
    `${row}.bucket_start < ${group}.bucket_start + interval '24 hours'`,
  ].join(' AND ');
}

import { EntityManager } from 'typeorm';
import { Granularity, GRANULARITY_SECONDS } from './time-buckets';

/** What usage can be grouped and filtered by: the rollups' key besides the bucket. */
export const DIMENSIONS = ['org_id', 'api_key_id', 'team_id', 'user_id', 'model', 'project_id', 'batch', 'service_tier'] as const;
export type Dimension = (typeof DIMENSIONS)[number];

/** Nullable on records; stored as '' in the rollups so a plain primary key serves the upserts. */
export const NULLABLE_DIMENSIONS: ReadonlySet<Dimension> = new Set(['team_id', 'user_id', 'project_id', 'service_tier']);

/** The sums every rollup row keeps (all bigint). */
export const MEASURES = [
  'input_tokens',
  'output_tokens',
  'input_cached_tokens',
  'input_audio_tokens',
  'output_audio_tokens',
  'num_model_requests',
  'cost_nano',
  'unpriced_requests',
] as const;
export type Measure = (typeof MEASURES)[number];

export type RollupGranularity = Exclude<Granularity, 'raw'>;

/** Every dimension but the end user: an org has a few keys and models but may have thousands of users. */
export const KEY_DIMENSIONS: readonly Dimension[] = DIMENSIONS.filter((d) => d !== 'user_id');

export type RollupName = 'minute' | 'hour' | 'day' | 'hourByKey' | 'dayByKey';

/** One rollup table: sums per bucket of its granularity and combination of its dimensions. */
export interface RollupTable {
  name: RollupName;
  table: string;
  granularity: RollupGranularity;
  dimensions: readonly Dimension[];
  /** What a rebuild sums it from: the records, or a finer (or wider) rollup. */
  source: RollupName | 'records';
}

/**
 * The rollups, in the order a rebuild fills them. Per-user rows at every granularity; per-key
 * rows (no user_id) per hour and day, which queries and budgets that do not need the end user
 * read instead: a few hundred rows per org and day rather than one per user, model and key.
 */
export const ROLLUPS: readonly RollupTable[] = [
  { name: 'minute', table: 'usage_rollups_minute', granularity: 'minute', dimensions: DIMENSIONS, source: 'records' },
  { name: 'hour', table: 'usage_rollups_hour', granularity: 'hour', dimensions: DIMENSIONS, source: 'minute' },
  { name: 'day', table: 'usage_rollups_day', granularity: 'day', dimensions: DIMENSIONS, source: 'hour' },
  { name: 'hourByKey', table: 'usage_rollups_hour_by_key', granularity: 'hour', dimensions: KEY_DIMENSIONS, source: 'hour' },
  { name: 'dayByKey', table: 'usage_rollups_day_by_key', granularity: 'day', dimensions: KEY_DIMENSIONS, source: 'day' },
];

/** SQL of the start of `table`'s bucket holding the instant `column` (a journal row's minute). */
export function rollupBucketSql(table: RollupTable, column = 'bucket_start'): string {
  const seconds = GRANULARITY_SECONDS[table.granularity];
  return seconds === GRANULARITY_SECONDS.minute ? column : `to_timestamp(floor(extract(epoch FROM ${column}) / ${seconds}) * ${seconds})`;
}

export function rollup(name: RollupName): RollupTable {
  return ROLLUPS.find((r) => r.name === name)!;
}

/** The rollup of a granularity with the fewest dimensions that still has all of `needed`. */
export function narrowestRollup(granularity: RollupGranularity, needed: Iterable<Dimension>): RollupTable {
  const wanted = [...needed];
  return ROLLUPS.filter((r) => r.granularity === granularity && wanted.every((d) => r.dimensions.includes(d))).sort(
    (a, b) => a.dimensions.length - b.dimensions.length,
  )[0];
}

/** How a measure reads from the raw completion_records table (a record is one request). */
export const RAW_MEASURE_SQL: Record<Measure, string> = {
  input_tokens: 'input_tokens',
  output_tokens: 'output_tokens',
  input_cached_tokens: 'input_cached_tokens',
  input_audio_tokens: 'input_audio_tokens',
  output_audio_tokens: 'output_audio_tokens',
  num_model_requests: '1',
  cost_nano: 'cost_nano',
  unpriced_requests: 'CASE WHEN unpriced THEN 1 ELSE 0 END',
};

/** How a dimension reads from the raw table so that it equals its rollup value ('' for null). */
export function rawDimensionSql(dimension: Dimension): string {
  return NULLABLE_DIMENSIONS.has(dimension) ? `COALESCE(${dimension}, '')` : dimension;
}

/** A validated record, as the rollups see it: dimension values ('' for null) and measures. */
export interface RollupInput {
  dimensions: Record<Dimension, string | boolean>;
  /** Unix seconds. */
  createdAt: number;
  measures: Record<Measure, bigint>;
}

const keyColumns = (table: RollupTable) => ['bucket_start', ...table.dimensions];

export interface RebuildCounts {
  records: number;
  rows: Record<RollupName, number>;
}

export function zeroRowCounts(): Record<RollupName, number> {
  return Object.fromEntries(ROLLUPS.map((r) => [r.name, 0])) as Record<RollupName, number>;
}

/**
 * Rebuilds one org's rollup rows of [from, to) (whole days) from the raw records: the minute
 * rollup from records, each other one from the rollup it names as its source (`withMinutes`
 * false: no per-minute rows, the hourly ones from the records). Call inside a transaction.
 */
export async function rebuildRollupRange(manager: EntityManager, orgId: string, from: Date, to: Date, withMinutes = true): Promise<RebuildCounts> {
  const range = [orgId, from.toISOString(), to.toISOString()];
  for (const r of ROLLUPS) {
    await manager.query(`DELETE FROM ${r.table} WHERE org_id = $1 AND bucket_start >= $2 AND bucket_start < $3`, range);
  }
  const counts: RebuildCounts = { records: 0, rows: zeroRowCounts() };
  for (const r of ROLLUPS) {
    if (r.granularity === 'minute' && !withMinutes) continue;
    // Without per-minute rows (past their retention) the rollups built from them are built from the records.
    const sourceName = !withMinutes && r.source === 'minute' ? 'records' : r.source;
    const fromRecords = sourceName === 'records';
    const source = sourceName === 'records' ? 'completion_records' : rollup(sourceName).table;
    const time = fromRecords ? 'created_at' : 'bucket_start';
    const seconds = GRANULARITY_SECONDS[r.granularity];
    const select = fromRecords
      ? [...r.dimensions.map(rawDimensionSql), ...MEASURES.map((m) => `SUM(${RAW_MEASURE_SQL[m]})`)]
      : [...r.dimensions, ...MEASURES.map((m) => `SUM(${m})`)];
    const groupPositions = keyColumns(r).map((_c, i) => i + 1).join(', ');
    const [result] = await manager.query(
      `WITH inserted AS (
         INSERT INTO ${r.table} (${[...keyColumns(r), ...MEASURES].join(', ')})
         SELECT to_timestamp(floor(extract(epoch FROM ${time}) / ${seconds}) * ${seconds}), ${select.join(', ')}
         FROM ${source} WHERE org_id = $1 AND ${time} >= $2 AND ${time} < $3
         GROUP BY ${groupPositions}
         RETURNING num_model_requests)
       SELECT count(*)::int AS rows, COALESCE(SUM(num_model_requests), 0)::bigint AS records FROM inserted`,
      range,
    );
    counts.rows[r.name] = result.rows;
    if (fromRecords) counts.records = Number(result.records);
  }
  return counts;
}

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
export const ROLLUP_GRANULARITIES: readonly RollupGranularity[] = ['minute', 'hour', 'day'];
export const ROLLUP_TABLES: Record<RollupGranularity, string> = {
  minute: 'usage_rollups_minute',
  hour: 'usage_rollups_hour',
  day: 'usage_rollups_day',
};

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

/** A newly stored record, as the rollups see it: dimension values ('' for null) and measures. */
export interface RollupInput {
  dimensions: Record<Dimension, string | boolean>;
  /** Unix seconds. */
  createdAt: number;
  measures: Record<Measure, bigint>;
}

export interface RollupRow {
  bucketStart: number;
  dimensions: Record<Dimension, string | boolean>;
  measures: Record<Measure, bigint>;
}

/**
 * Sums a batch per rollup key (bucket + dimensions), sorted by key: concurrent batches then lock
 * rollup rows in the same order and cannot deadlock.
 */
export function aggregateRollup(records: RollupInput[], granularity: RollupGranularity): RollupRow[] {
  const seconds = GRANULARITY_SECONDS[granularity];
  const rows = new Map<string, { key: string[]; row: RollupRow }>();
  for (const record of records) {
    const bucketStart = Math.floor(record.createdAt / seconds) * seconds;
    const key = [String(bucketStart).padStart(12, '0'), ...DIMENSIONS.map((d) => String(record.dimensions[d]))];
    const id = key.join('\u0000');
    let entry = rows.get(id);
    if (!entry) {
      entry = { key, row: { bucketStart, dimensions: record.dimensions, measures: zeroMeasures() } };
      rows.set(id, entry);
    }
    for (const m of MEASURES) entry.row.measures[m] += record.measures[m];
  }
  return [...rows.values()].sort((a, b) => compareKeys(a.key, b.key)).map((e) => e.row);
}

function compareKeys(a: string[], b: string[]): number {
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  }
  return 0;
}

export function zeroMeasures(): Record<Measure, bigint> {
  return Object.fromEntries(MEASURES.map((m) => [m, 0n])) as Record<Measure, bigint>;
}

const KEY_COLUMNS = ['bucket_start', ...DIMENSIONS];
const KEY_TYPES = ['timestamptz', ...DIMENSIONS.map((d) => (d === 'batch' ? 'boolean' : 'varchar'))];

/** Adds the rows to a rollup table in one multi-row upsert, in the given (sorted) order. */
export async function upsertRollups(manager: EntityManager, granularity: RollupGranularity, rows: RollupRow[]): Promise<void> {
  if (rows.length === 0) return;
  const columns = [
    rows.map((r) => new Date(r.bucketStart * 1000).toISOString()),
    ...DIMENSIONS.map((d) => rows.map((r) => r.dimensions[d])),
    ...MEASURES.map((m) => rows.map((r) => r.measures[m].toString())),
  ];
  const types = [...KEY_TYPES, ...MEASURES.map(() => 'bigint')];
  const unnest = types.map((type, i) => `$${i + 1}::${type}[]`).join(', ');
  await manager.query(
    `INSERT INTO ${ROLLUP_TABLES[granularity]} AS r (${[...KEY_COLUMNS, ...MEASURES].join(', ')})
     SELECT * FROM unnest(${unnest})
     ON CONFLICT (${KEY_COLUMNS.join(', ')}) DO UPDATE SET ${MEASURES.map((m) => `${m} = r.${m} + EXCLUDED.${m}`).join(', ')}`,
    columns,
  );
}

export interface RebuildCounts {
  records: number;
  rows: Record<RollupGranularity, number>;
}

/**
 * Rebuilds one org's rollup rows of [from, to) (whole days) from the raw records: the minute
 * rollup from records, the hour and day rollups from the minute rows. Call inside a transaction.
 */
export async function rebuildRollupRange(manager: EntityManager, orgId: string, from: Date, to: Date): Promise<RebuildCounts> {
  const range = [orgId, from.toISOString(), to.toISOString()];
  for (const granularity of ROLLUP_GRANULARITIES) {
    await manager.query(`DELETE FROM ${ROLLUP_TABLES[granularity]} WHERE org_id = $1 AND bucket_start >= $2 AND bucket_start < $3`, range);
  }
  const counts: RebuildCounts = { records: 0, rows: { minute: 0, hour: 0, day: 0 } };
  const groupPositions = KEY_COLUMNS.map((_c, i) => i + 1).join(', ');
  for (const granularity of ROLLUP_GRANULARITIES) {
    // Minutes from the records; hours from the minutes; days from the hours.
    const source = { minute: 'completion_records', hour: ROLLUP_TABLES.minute, day: ROLLUP_TABLES.hour }[granularity];
    const time = granularity === 'minute' ? 'created_at' : 'bucket_start';
    const seconds = GRANULARITY_SECONDS[granularity];
    const select =
      granularity === 'minute'
        ? [...DIMENSIONS.map(rawDimensionSql), ...MEASURES.map((m) => `SUM(${RAW_MEASURE_SQL[m]})`)]
        : [...DIMENSIONS, ...MEASURES.map((m) => `SUM(${m})`)];
    const [result] = await manager.query(
      `WITH inserted AS (
         INSERT INTO ${ROLLUP_TABLES[granularity]} (${[...KEY_COLUMNS, ...MEASURES].join(', ')})
         SELECT to_timestamp(floor(extract(epoch FROM ${time}) / ${seconds}) * ${seconds}), ${select.join(', ')}
         FROM ${source} WHERE org_id = $1 AND ${time} >= $2 AND ${time} < $3
         GROUP BY ${groupPositions}
         RETURNING num_model_requests)
       SELECT count(*)::int AS rows, COALESCE(SUM(num_model_requests), 0)::bigint AS records FROM inserted`,
      range,
    );
    counts.rows[granularity] = result.rows;
    counts.records = Number(result.records);
  }
  return counts;
}

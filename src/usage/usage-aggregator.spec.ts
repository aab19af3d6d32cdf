import { DAY, HOUR } from './time-buckets';
import { buildAggregateSql } from './usage-aggregator';

const T0 = 1704067200;
const filter = { orgId: 'org_a', anyOf: [{ dimension: 'model' as const, values: ['m'] }] };

describe('buildAggregateSql', () => {
  it('answers an aligned daily query from the daily per-key rollup plus the pending journal and held rows, in one statement', () => {
    const built = buildAggregateSql({ from: T0, to: T0 + 31 * DAY, width: '1d', dimensions: ['model'], measures: ['input_tokens'], filter })!;
    expect(built.sql).toBe(
      'SELECT bucket, model, SUM(input_tokens) AS input_tokens FROM (' +
        'SELECT extract(epoch FROM bucket_start)::bigint AS bucket, model AS model, SUM(input_tokens) AS input_tokens ' +
        'FROM usage_rollups_day_by_key WHERE ((bucket_start >= $3 AND bucket_start < $4)) AND org_id = $1 AND model = ANY($2) ' +
        'GROUP BY 1, 2 UNION ALL ' +
        'SELECT (floor(extract(epoch FROM bucket_start) / 86400) * 86400)::bigint AS bucket, model AS model, SUM(input_tokens) AS input_tokens ' +
        'FROM usage_rollup_deltas WHERE ((bucket_start >= $5 AND bucket_start < $6)) AND org_id = $1 AND model = ANY($2) ' +
        'GROUP BY 1, 2 UNION ALL ' +
        'SELECT (floor(extract(epoch FROM bucket_start) / 86400) * 86400)::bigint AS bucket, model AS model, SUM(input_tokens) AS input_tokens ' +
        'FROM usage_rollup_deltas_held WHERE ((bucket_start >= $5 AND bucket_start < $6)) AND org_id = $1 AND model = ANY($2) ' +
        'GROUP BY 1, 2) u GROUP BY 1, 2 ORDER BY 1, 2',
    );
    const [from, to] = ['2024-01-01T00:00:00.000Z', '2024-02-01T00:00:00.000Z'];
    expect(built.params).toEqual(['org_a', ['m'], from, to, from, to]);
  });

  it('reads the per-user rollups when the query groups or filters by end user', () => {
    const grouped = buildAggregateSql({ from: T0, to: T0 + DAY, width: '1d', dimensions: ['user_id'], measures: ['input_tokens'], filter })!;
    expect(grouped.sql).toContain('FROM usage_rollups_day WHERE');
    const filtered = buildAggregateSql({
      from: T0,
      to: T0 + DAY,
      width: '1h',
      dimensions: ['model'],
      measures: ['input_tokens'],
      filter: { orgId: 'org_a', anyOf: [{ dimension: 'user_id', values: ['u'] }] },
    })!;
    expect(filtered.sql).toContain('FROM usage_rollups_hour WHERE');
    const byKey = buildAggregateSql({ from: T0, to: T0 + DAY, width: '1h', dimensions: ['api_key_id'], measures: ['input_tokens'], filter })!;
    expect(byKey.sql).toContain('FROM usage_rollups_hour_by_key WHERE');
  });

  it('reads hourly buckets from the hourly rollup, never the daily one', () => {
    const built = buildAggregateSql({ from: T0, to: T0 + 2 * DAY, width: '1h', dimensions: [], measures: ['cost_nano'], filter: { anyOf: [] } })!;
    expect(built.sql).toContain('FROM usage_rollups_hour');
    expect(built.sql).not.toContain('usage_rollups_day');
  });

  it('adds finer sources for ragged edges and sums them per bucket', () => {
    const built = buildAggregateSql({ from: T0 + 30, to: T0 + DAY + HOUR, width: '1d', dimensions: ['user_id'], measures: ['num_model_requests'], filter: { anyOf: [] } })!;
    for (const source of ['completion_records', 'usage_rollups_minute', 'usage_rollups_hour']) expect(built.sql).toContain(`FROM ${source}`);
    expect(built.sql).not.toContain('usage_rollups_day');
    expect(built.sql).toContain("COALESCE(user_id, '') AS user_id, SUM(1) AS num_model_requests FROM completion_records");
    // The journal covers the rollup-backed segments only (whole minutes), never the raw edges.
    expect(built.sql).toContain('FROM usage_rollup_deltas WHERE ((bucket_start >= $');
    expect(built.sql).toContain('FROM usage_rollup_deltas_held WHERE ((bucket_start >= $');
    expect(built.params).toContain('2024-01-01T00:01:00.000Z');
    expect(built.sql).toMatch(/^SELECT bucket, user_id, SUM\(num_model_requests\) AS num_model_requests FROM \(.* UNION ALL .*\) u GROUP BY 1, 2 ORDER BY 1, 2$/);
  });

  it('sums a whole range without buckets or groups, and nothing for an empty range', () => {
    const built = buildAggregateSql({ from: T0, to: T0 + DAY, dimensions: [], measures: ['cost_nano'], filter: { anyOf: [], batch: true } })!;
    expect(built.sql).toBe(
      'SELECT SUM(cost_nano) AS cost_nano FROM (' +
        'SELECT SUM(cost_nano) AS cost_nano FROM usage_rollups_day_by_key WHERE ((bucket_start >= $2 AND bucket_start < $3)) AND batch = $1 UNION ALL ' +
        'SELECT SUM(cost_nano) AS cost_nano FROM usage_rollup_deltas WHERE ((bucket_start >= $4 AND bucket_start < $5)) AND batch = $1 UNION ALL ' +
        'SELECT SUM(cost_nano) AS cost_nano FROM usage_rollup_deltas_held WHERE ((bucket_start >= $4 AND bucket_start < $5)) AND batch = $1) u',
    );
    expect(buildAggregateSql({ from: T0, to: T0, dimensions: [], measures: ['cost_nano'], filter: { anyOf: [] } })).toBeNull();
  });
});

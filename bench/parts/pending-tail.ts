import { Client } from 'pg';
import { foldOnce, JOURNAL_TABLE } from '../../src/usage/rollup-journal';
import { DIMENSIONS, MEASURES, ROLLUPS } from '../../src/usage/rollups';
import { GRANULARITY_SECONDS } from '../../src/usage/time-buckets';

/**
 * A pending tail for part 1 (issue 13): moves one org's usage of [from, to) back out of the
 * rollups into the rollup journal, exactly as if no fold had run since (the per-minute rows become
 * journal rows; their sums are subtracted from the hourly and daily rollups). Reports stay exact
 * and now read the tail from the journal. {@link foldTail} folds it back.
 */
export async function unfoldTail(pg: Client, orgId: string, from: number, to: number): Promise<number> {
  const minute = ROLLUPS.find((r) => r.granularity === 'minute')!;
  const columns = ['bucket_start', ...DIMENSIONS, ...MEASURES];
  const subtract = ROLLUPS.filter((r) => r.granularity !== 'minute').map((r) => {
    const seconds = GRANULARITY_SECONDS[r.granularity];
    const key = ['bucket_start', ...r.dimensions];
    return `sub_${r.name} AS (
      UPDATE ${r.table} r SET ${MEASURES.map((m) => `${m} = r.${m} - s.${m}`).join(', ')}
      FROM (SELECT to_timestamp(floor(extract(epoch FROM bucket_start) / ${seconds}) * ${seconds}) AS bucket_start, ${r.dimensions.join(', ')},
              ${MEASURES.map((m) => `SUM(${m}) AS ${m}`).join(', ')}
            FROM moved GROUP BY ${key.map((_k, i) => i + 1).join(', ')}) s
      WHERE ${key.map((k) => `r.${k} = s.${k}`).join(' AND ')})`;
  });
  const [row] = (
    await pg.query(
      `WITH moved AS (DELETE FROM ${minute.table} WHERE org_id = $1 AND bucket_start >= $2 AND bucket_start < $3 RETURNING *),
       journal AS (INSERT INTO ${JOURNAL_TABLE} (${columns.join(', ')}) SELECT ${columns.join(', ')} FROM moved),
       ${subtract.join(',\n       ')}
       SELECT count(*)::int AS rows FROM moved`,
      [orgId, new Date(from * 1000).toISOString(), new Date(to * 1000).toISOString()],
    )
  ).rows;
  return row.rows;
}

/** Folds the whole journal back into the rollups, as the worker would. */
export async function foldTail(pg: Client): Promise<void> {
  const runner = { query: async (sql: string, params?: unknown[]) => (await pg.query(sql, params)).rows };
  for (;;) {
    await pg.query('BEGIN');
    try {
      const result = await foldOnce(runner, 100_000);
      await pg.query('COMMIT');
      if (result.locked && result.deltas === 0) return;
    } catch (err) {
      await pg.query('ROLLBACK');
      throw err;
    }
  }
}

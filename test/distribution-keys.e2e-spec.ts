import { createTestDatabase, TestDatabase } from './helpers/test-database';
import { withAdminClient } from './setup/services';

/**
 * SPEC §8: PostgreSQL may be distributed by org_id (Citus). Reads the catalog of a migrated
 * database: every primary and unique key of a table that grows with traffic includes org_id, and
 * so does every foreign key between two such tables. Small, slowly written tables (orgs, api_keys,
 * budgets, model_prices) are reference tables and may be referenced by anything.
 */
const REFERENCE_TABLES = new Set(['orgs', 'api_keys', 'budgets', 'model_prices', 'migrations']);
/**
 * Small tables that stay local to the Citus coordinator: `budget_evaluation_requests` holds only
 * the evaluations an ingest could not enqueue while Redis was down, deleted as they run.
 */
const LOCAL_TABLES = new Set(['budget_evaluation_requests']);
/** Tables that grow with traffic; a new table must be listed here or in REFERENCE_TABLES. */
const TRAFFIC_TABLES = [
  'completion_records',
  'usage_rollups_minute',
  'usage_rollups_hour',
  'usage_rollups_day',
  'usage_rollups_hour_by_key',
  'usage_rollups_day_by_key',
  'usage_rollup_deltas',
  'usage_rollup_deltas_held',
  'usage_rollup_held_groups',
  'alerts',
  'webhook_deliveries',
  'reservations',
  'reservation_fences',
];
/** Names that mark a table as traffic even before it is listed (e.g. reservations). */
const TRAFFIC_PATTERN = /record|rollup|delta|journal|reservation|alert|deliver/;

interface Key {
  table: string;
  name: string;
  kind: 'p' | 'u' | 'f';
  columns: string[];
  referenced: string | null;
  referencedColumns: string[];
  definition: string;
}

describe('distribution by org_id (Citus rules, read from the catalog)', () => {
  let db: TestDatabase;
  let keys: Key[];
  let tables: string[];

  beforeAll(async () => {
    db = await createTestDatabase();
    await withAdminClient(db.url, async (c) => {
      // Top-level tables only (monthly partitions inherit their parent's keys).
      tables = (
        await c.query(
          `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
           WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1`,
        )
      ).rows.map((r: { relname: string }) => r.relname);
      const constraints = await c.query(
        `SELECT cl.relname AS table, co.conname AS name, co.contype AS kind, rf.relname AS referenced, pg_get_constraintdef(co.oid) AS definition,
           ARRAY(SELECT a.attname FROM unnest(co.conkey) k JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = k)::text[] AS columns,
           ARRAY(SELECT a.attname FROM unnest(co.confkey) k JOIN pg_attribute a ON a.attrelid = co.confrelid AND a.attnum = k)::text[] AS "referencedColumns"
         FROM pg_constraint co JOIN pg_class cl ON cl.oid = co.conrelid LEFT JOIN pg_class rf ON rf.oid = co.confrelid
         WHERE co.contype IN ('p', 'u', 'f') AND cl.relnamespace = 'public'::regnamespace AND NOT cl.relispartition`,
      );
      // Unique indexes that are not constraints (CREATE UNIQUE INDEX) count as unique keys too.
      const indexes = await c.query(
        `SELECT cl.relname AS table, ic.relname AS name, 'u' AS kind, NULL AS referenced, pg_get_indexdef(i.indexrelid) AS definition,
           ARRAY(SELECT a.attname FROM unnest(i.indkey) k JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k)::text[] AS columns,
           ARRAY[]::text[] AS "referencedColumns"
         FROM pg_index i JOIN pg_class cl ON cl.oid = i.indrelid JOIN pg_class ic ON ic.oid = i.indexrelid
         WHERE i.indisunique AND NOT i.indisprimary AND cl.relnamespace = 'public'::regnamespace AND NOT cl.relispartition
           AND NOT EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = i.indexrelid)`,
      );
      keys = [...constraints.rows, ...indexes.rows];
    });
  });
  afterAll(() => db.drop());

  const traffic = (table: string) => TRAFFIC_TABLES.includes(table) || (!REFERENCE_TABLES.has(table) && !LOCAL_TABLES.has(table) && TRAFFIC_PATTERN.test(table));

  it('knows every table as traffic, reference or coordinator-local', () => {
    expect(tables.filter((t) => !traffic(t) && !REFERENCE_TABLES.has(t) && !LOCAL_TABLES.has(t))).toEqual([]);
    for (const t of TRAFFIC_TABLES) expect(tables).toContain(t);
  });

  it('has org_id in every primary and unique key of a traffic table', () => {
    const offenders = keys.filter((k) => traffic(k.table) && k.kind !== 'f' && !k.columns.includes('org_id')).map((k) => `${k.table}: ${k.definition}`);
    expect(offenders).toEqual([]);
  });

  it('has org_id on both sides of every foreign key between two traffic tables', () => {
    const between = keys.filter((k) => k.kind === 'f' && traffic(k.table) && k.referenced !== null && traffic(k.referenced));
    expect(between.length).toBeGreaterThan(0); // webhook_deliveries → alerts
    const offenders = between
      .filter((k) => {
        const i = k.columns.indexOf('org_id');
        return i < 0 || k.referencedColumns[i] !== 'org_id';
      })
      .map((k) => `${k.table}: ${k.definition}`);
    expect(offenders).toEqual([]);
  });
});

import { Client } from 'pg';
import { createDataSource } from '../../src/database/data-source';
import { rebuildRollupRange, ROLLUPS } from '../../src/usage/rollups';
import { HELD_GROUPS_TABLE, PENDING_TABLES } from '../../src/usage/pending-deltas';
import { inParallel } from '../harness/parallel';
import { copyInto } from './copy';
import { copyChunks, RECORD_COLUMNS } from './record-format';
import { Traffic } from './traffic';

const TABLES = ['completion_records', ...ROLLUPS.map((r) => r.table)];
/** Session settings of the bulk load: big sorts and hashes in memory, no fsync wait per commit. */
const LOAD_SETTINGS = '-c work_mem=256MB -c maintenance_work_mem=512MB -c synchronous_commit=off';

export interface LoadTimings {
  records: number;
  copySeconds: number;
  rollupSeconds: number;
  indexSeconds: number;
  vacuumSeconds: number;
  /** Rows of each rollup table after the load. */
  rollupRows: Record<string, number>;
}

interface IndexDefinition {
  table: string;
  name: string;
  /** CREATE INDEX statement, or the constraint definition (PRIMARY KEY (…)). */
  definition: string;
  constraint: boolean;
}

/**
 * Replaces the usage data of the database with `count` records over [from, to): truncates the
 * records and rollups, drops their indexes, COPYs the records in, builds the rollups with the
 * service's own rebuild SQL (one range per org, two orgs at a time), recreates the indexes exactly
 * as the migrations made them, then VACUUM ANALYZE (statistics and the visibility map that the
 * queries would have after a day of autovacuum).
 */
export async function loadUsage(url: string, traffic: Traffic, count: number, from: number, to: number, log: (line: string) => void): Promise<LoadTimings> {
  const client = new Client({ connectionString: url, options: LOAD_SETTINGS });
  await client.connect();
  const dataSource = createDataSource(url, { extra: { max: 2, options: LOAD_SETTINGS } });
  await dataSource.initialize();
  try {
    await client.query(`TRUNCATE ${[...TABLES, ...PENDING_TABLES, HELD_GROUPS_TABLE].join(', ')}`);
    const indexes = await dropIndexes(client, TABLES);
    let started = Date.now();
    const records = await copyInto(client, 'completion_records', RECORD_COLUMNS, copyChunks(traffic.records(count, from, to, 'a')));
    const copySeconds = seconds(started);
    log(`  copied ${records} records in ${copySeconds.toFixed(1)} s`);

    started = Date.now();
    const orgIds: string[] = (await client.query('SELECT DISTINCT org_id FROM completion_records ORDER BY 1')).rows.map((r) => r.org_id);
    const dayFrom = new Date(Math.floor(from / 86400) * 86400 * 1000);
    const dayTo = new Date(Math.ceil(to / 86400) * 86400 * 1000);
    await inParallel(orgIds, 2, (orgId) => dataSource.transaction((manager) => rebuildRollupRange(manager, orgId, dayFrom, dayTo)));
    const rollupSeconds = seconds(started);
    log(`  built rollups in ${rollupSeconds.toFixed(1)} s`);

    started = Date.now();
    // One table per connection: a table's index builds would wait for each other's locks anyway.
    await inParallel(TABLES, 2, async (table) => {
      for (const index of indexes.filter((i) => i.table === table)) await dataSource.query(createIndexSql(index));
    });
    const indexSeconds = seconds(started);
    started = Date.now();
    await inParallel(TABLES, 2, (table) => dataSource.query(`VACUUM (ANALYZE) ${table}`));
    const vacuumSeconds = seconds(started);
    log(`  recreated ${indexes.length} indexes in ${indexSeconds.toFixed(1)} s, vacuumed in ${vacuumSeconds.toFixed(1)} s`);

    const rollupRows: Record<string, number> = {};
    for (const { table } of ROLLUPS) {
      rollupRows[table] = Number((await client.query(`SELECT count(*) AS n FROM ${table}`)).rows[0].n);
    }
    return { records, copySeconds, rollupSeconds, indexSeconds, vacuumSeconds, rollupRows };
  } finally {
    await dataSource.destroy();
    await client.end();
  }
}

async function dropIndexes(client: Client, tables: string[]): Promise<IndexDefinition[]> {
  const { rows } = await client.query(
    `SELECT i.indrelid::regclass::text AS table, i.indexrelid::regclass::text AS name, c.conname,
            COALESCE(pg_get_constraintdef(c.oid), pg_get_indexdef(i.indexrelid)) AS definition
     FROM pg_index i LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.contype IN ('p', 'u')
     WHERE i.indrelid = ANY($1::regclass[])`,
    [tables],
  );
  const indexes: IndexDefinition[] = rows.map((r) => ({ table: r.table, name: r.conname ?? r.name, definition: r.definition, constraint: r.conname !== null }));
  for (const index of indexes) {
    await client.query(index.constraint ? `ALTER TABLE ${index.table} DROP CONSTRAINT "${index.name}"` : `DROP INDEX ${index.name}`);
  }
  return indexes;
}

function createIndexSql(index: IndexDefinition): string {
  return index.constraint ? `ALTER TABLE ${index.table} ADD CONSTRAINT "${index.name}" ${index.definition}` : index.definition;
}

function seconds(since: number): number {
  return (Date.now() - since) / 1000;
}

import { Client, ClientConfig } from 'pg';
import { DataSource, DataSourceOptions } from 'typeorm';
import { ENTITIES } from './entities';
import { MIGRATIONS } from '../../migrations';

/** The name of the worker's own data source (its own pool; see app.module.ts). */
export const WORKER_DATA_SOURCE = 'worker';

/**
 * The pool's client class. A server that drops a connection (restart, `pg_terminate_backend`, a
 * dropped database) makes pg emit `error` on the client; pg-pool listens while a client is idle and
 * TypeORM while a query runner holds it, but in the moments between (and on a client TypeORM has
 * let go of after an earlier error) nothing does, and an unheard `error` event ends the process.
 * This listener hears it always; the failure still reaches the code through its next query.
 */
class ListenedClient extends Client {
  constructor(config?: string | ClientConfig) {
    super(config);
    this.on('error', () => undefined);
  }
}

/** The one data source definition shared by the app, the CLI and the tests. */
export function dataSourceOptions(url: string, overrides: Partial<DataSourceOptions> = {}, poolSize = 20, applicationName = 'tally'): DataSourceOptions {
  return {
    type: 'postgres',
    url,
    entities: ENTITIES,
    migrations: MIGRATIONS,
    migrationsTableName: 'migrations',
    migrationsTransactionMode: 'each',
    synchronize: false,
    migrationsRun: false,
    logging: false,
    connectTimeoutMS: 5000,
    extra: {
      Client: ListenedClient,
      max: poolSize,
      // Fail fast while the database is down instead of queueing forever.
      connectionTimeoutMillis: 5000,
      idleTimeoutMillis: 30000,
      application_name: applicationName,
    },
    ...overrides,
  } as DataSourceOptions;
}

export function createDataSource(url: string, overrides: Partial<DataSourceOptions> = {}): DataSource {
  return new DataSource(dataSourceOptions(url, overrides));
}

/** Session-level advisory lock held while migrating and bootstrapping, so several processes start safely. */
export const STARTUP_LOCK_ID = 7_240_115;

/** Applies pending migrations under the start-up lock; returns the names applied. */
export async function runMigrations(dataSource: DataSource): Promise<string[]> {
  const runner = dataSource.createQueryRunner();
  await runner.connect();
  try {
    await runner.query('SELECT pg_advisory_lock($1)', [STARTUP_LOCK_ID]);
    const applied = await dataSource.runMigrations({ transaction: 'each' });
    return applied.map((m) => m.name);
  } finally {
    await runner.query('SELECT pg_advisory_unlock($1)', [STARTUP_LOCK_ID]).catch(() => undefined);
    await runner.release();
  }
}

/** SQL that would bring the database in line with the entities; empty when migrations match the code. */
export async function pendingSchemaChanges(dataSource: DataSource): Promise<{ up: string[]; down: string[] }> {
  const log = await dataSource.driver.createSchemaBuilder().log();
  return {
    up: log.upQueries.map((q) => q.query),
    down: log.downQueries.map((q) => q.query),
  };
}

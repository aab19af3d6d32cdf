import { randomBytes } from 'node:crypto';
import { databaseUrl, withAdminClient } from '../setup/services';

export interface TestDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

/** A fresh database cloned from the migrated template (real PostgreSQL, real migrations). */
export async function createTestDatabase(): Promise<TestDatabase> {
  const server = process.env.TEST_PG_SERVER_URL;
  const template = process.env.TEST_TEMPLATE_DB;
  if (!server || !template) throw new Error('Run the tests through jest (its global setup prepares the database)');
  const name = `${template}_${randomBytes(4).toString('hex')}`;
  await withAdminClient(server, (c) => c.query(`CREATE DATABASE ${name} TEMPLATE ${template}`));
  return {
    name,
    url: databaseUrl(server, name),
    drop: () => withAdminClient(server, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined),
  };
}

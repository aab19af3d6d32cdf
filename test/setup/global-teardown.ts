import { withAdminClient } from './services';

export default async function globalTeardown(): Promise<void> {
  const server = process.env.TEST_PG_SERVER_URL;
  const template = process.env.TEST_TEMPLATE_DB;
  if (server && template) {
    await withAdminClient(server, async (c) => {
      // Drop the template and any database a crashed test file left behind.
      const { rows } = await c.query<{ datname: string }>(
        `SELECT datname FROM pg_database WHERE datname = $1 OR datname LIKE $2`,
        [template, `${template}_%`],
      );
      for (const { datname } of rows) await c.query(`DROP DATABASE IF EXISTS ${datname} WITH (FORCE)`);
    });
  }
  const stops = (globalThis as { __tallyTestStops?: Array<() => Promise<void> | void> }).__tallyTestStops ?? [];
  for (const stop of stops) await stop();
}

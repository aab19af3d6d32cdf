import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import pino from 'pino';
import { createDataSource, runMigrations } from '../../src/database/data-source';
import { startEmbeddedPostgres } from '../../src/database/embedded-postgres';
import { ensureRedis } from '../../src/redis/redis';
import { databaseUrl, PG_SERVER_URL, pgAnswers, TEST_REDIS_URL, withAdminClient } from './services';

/**
 * Once per `npm test`: finds real PostgreSQL and Redis (starting embedded/local ones when none
 * answer), and builds a template database with the real migrations applied. Each test file then
 * clones it (CREATE DATABASE … TEMPLATE), which takes milliseconds.
 */
export default async function globalSetup(): Promise<void> {
  const logger = pino({ level: 'warn' });
  let server = PG_SERVER_URL;
  const stops: Array<() => Promise<void> | void> = [];
  if (!(await pgAnswers(server))) {
    const embedded = await startEmbeddedPostgres(resolve(__dirname, '..', '..', '.data', 'test'), logger);
    server = databaseUrl(embedded.url, 'postgres');
    stops.push(() => embedded.stop());
  }
  const redis = await ensureRedis(TEST_REDIS_URL, logger);
  if (redis) stops.push(() => redis.stop());

  const template = `tally_template_${randomBytes(4).toString('hex')}`;
  await withAdminClient(server, (c) => c.query(`CREATE DATABASE ${template}`));
  const dataSource = createDataSource(databaseUrl(server, template));
  await dataSource.initialize();
  await runMigrations(dataSource);
  await dataSource.destroy();

  process.env.TEST_PG_SERVER_URL = server;
  process.env.TEST_TEMPLATE_DB = template;
  process.env.TEST_REDIS_URL = TEST_REDIS_URL;
  (globalThis as { __tallyTestStops?: typeof stops }).__tallyTestStops = stops;
}

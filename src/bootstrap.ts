import { INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { Logger } from 'pino';
import { AppModule, processParts } from './app.module';
import { bootstrapAdminKey, printGeneratedAdminKey } from './auth/admin-bootstrap';
import { NestPinoLogger } from './common/logger';
import { AppConfig } from './config/app-config';
import { createDataSource, runMigrations } from './database/data-source';
import { startEmbeddedPostgres } from './database/embedded-postgres';
import { createHttpApp } from './http-app';
import { ensureRedis, targetAnswers } from './redis/redis';
import { checkSecretsKey, resolveSecretsKey } from './secrets-key';

export interface RunningProcess {
  config: AppConfig;
  app: INestApplicationContext;
  /** Graceful stop: in-flight requests and jobs finish, then the dependencies this process started. */
  stop(): Promise<void>;
}

/** Prepares the database (embedded when no URL), Redis, migrations and the admin key. */
export async function prepareDependencies(
  input: AppConfig,
  logger: Logger,
): Promise<{ config: AppConfig; cleanups: Array<() => Promise<void> | void> }> {
  const config = { ...input };
  const cleanups: Array<() => Promise<void> | void> = [];
  // The quick start: embedded PostgreSQL without DATABASE_URL, and a local redis-server when none
  // answers at a loopback REDIS_URL (SPEC §1, whatever the database).
  if (!config.databaseUrl) {
    const embedded = await startEmbeddedPostgres(config.dataDir, logger);
    // Shut down by us, after the app, not by embedded-postgres' own signal hooks.
    unhookEmbeddedPostgresSignals();
    config.databaseUrl = embedded.url;
    cleanups.push(() => embedded.stop());
  }
  if (config.redisClusterNodes) {
    if (!(await targetAnswers(config, 5000))) throw new Error('The Redis Cluster at REDIS_CLUSTER_NODES does not answer, or its state is not ok');
  } else {
    const localRedis = await ensureRedis(config.redisUrl, logger);
    if (localRedis) cleanups.push(() => localRedis.stop());
  }
  config.secretsKey = await resolveSecretsKey(config.secretsKey, config.dataDir, logger);

  const dataSource = createDataSource(config.databaseUrl);
  await dataSource.initialize();
  try {
    const applied = await runMigrations(dataSource);
    if (applied.length > 0) logger.info({ context: 'Migrations', applied }, 'Applied migrations');
    await checkSecretsKey(dataSource, config.secretsKey);
    const outcome = await bootstrapAdminKey(dataSource, config.adminApiKey);
    if (outcome.kind === 'generated') printGeneratedAdminKey(outcome.secret);
    if (outcome.kind === 'configured-revoked') {
      logger.warn({ context: 'Bootstrap' }, 'ADMIN_API_KEY names a revoked key; it stays revoked');
    }
  } finally {
    await dataSource.destroy();
  }
  return { config, cleanups };
}

/** Starts one process of the given role: API (listening), worker, or both. */
export async function startProcess(input: AppConfig, logger: Logger): Promise<RunningProcess> {
  const { config, cleanups } = await prepareDependencies(input, logger);
  const parts = processParts(config);
  let app: INestApplicationContext;
  if (parts.api) {
    const http = await createHttpApp(config, logger);
    await http.listen({ port: config.port, host: config.host });
    logger.info({ context: 'Tally', url: await http.getUrl(), role: config.processRole }, 'Tally is listening; API docs at /docs');
    app = http;
  } else {
    app = await NestFactory.createApplicationContext(AppModule.forRoot(config), { logger: new NestPinoLogger(logger) });
    await app.init();
    logger.info({ context: 'Tally', role: config.processRole }, 'Tally worker is running');
  }
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      await app.close();
      for (const cleanup of cleanups.reverse()) await cleanup();
    })());
  return { config, app, stop };
}

function unhookEmbeddedPostgresSignals(): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const hook = require('async-exit-hook') as { unhookEvent(event: string): void };
  for (const event of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK']) hook.unhookEvent(event);
}

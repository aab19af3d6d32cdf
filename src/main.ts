import 'reflect-metadata';
import { startProcess } from './bootstrap';
import { ConfigError, loadConfig, ProcessRole } from './config/app-config';
import { createRootLogger } from './common/logger';

/** Entry point of `npm start` (and, with a forced role, of `worker.ts`). */
export async function main(forcedRole?: ProcessRole): Promise<void> {
  let config;
  try {
    config = loadConfig(forcedRole ? { ...process.env, PROCESS_ROLE: forcedRole } : process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createRootLogger(config.logLevel);
  let running;
  try {
    running = await startProcess(config, logger);
  } catch (err) {
    logger.fatal({ context: 'Tally', errorMessage: err instanceof Error ? err.message : String(err) }, 'Start-up failed');
    process.exit(1);
  }
  const shutdown = (signal: string) => {
    logger.info({ context: 'Tally', signal }, 'Shutting down: finishing in-flight requests and jobs');
    const force = setTimeout(() => {
      logger.error({ context: 'Tally' }, 'Shutdown did not finish within 30 s (a request, a job or a connection still open); exiting');
      process.exit(1);
    }, 30_000);
    force.unref();
    running.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ context: 'Tally', errorMessage: err instanceof Error ? err.message : String(err) }, 'Shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

if (require.main === module) void main();

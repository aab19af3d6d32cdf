import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import pino from 'pino';
import { AppModule } from '../app.module';
import { prepareDependencies } from '../bootstrap';
import { createRootLogger, NestPinoLogger } from '../common/logger';
import { loadConfig } from '../config/app-config';
import { JANUARY_2024 } from '../demo/demo-data';
import { DemoAlreadyLoaded, DemoReport, fillDemo } from '../demo/fill-demo';
import { Output, textProgressBar } from './progress';

export const USAGE = 'Usage: npm run demo [-- --scale <0.001-20>]  (fills DATABASE_URL, or the embedded PostgreSQL of npm start when unset)';

/** `--scale <n>` (default 1): the volume of records. */
export function parseScale(argv: string[]): number {
  const at = argv.findIndex((arg) => arg === '--scale' || arg.startsWith('--scale='));
  if (at === -1) return 1;
  const raw = argv[at].includes('=') ? argv[at].split('=')[1] : argv[at + 1];
  const scale = Number(raw);
  if (!(scale >= 0.001 && scale <= 20)) throw new Error(`--scale must be a number from 0.001 to 20 (got "${raw ?? ''}")\n${USAGE}`);
  return scale;
}

/** What the command prints on stdout at the end: what it made, and the demo keys (shown once). */
export function formatReport(report: DemoReport): string {
  const lines = [
    '',
    `Demo data loaded: ${report.orgs.length} orgs, ${report.keys.length} API keys, ${report.totalRecords} completion records, ${report.budgets.length} budgets.`,
    `Periods: ${report.periods.map((p) => p.label).join(' and ')}.`,
    ...Object.entries(report.records).map(([org, byPeriod]) => `  ${org.padEnd(20)} ${Object.entries(byPeriod).map(([label, n]) => `${n} records in ${label}`).join(', ')}`),
    '',
    'Demo API keys (secrets shown this once; they work until revoked):',
    ...report.keys.map((k) => `  ${k.org.padEnd(20)} ${k.role.padEnd(10)} ${k.name.padEnd(18)} ${k.id}  ${k.key}`),
    '',
    'Try it: `npm start`, open http://localhost:3000/docs, Authorize with an org admin key above, and run',
    'GET /api/v1/llm/usage/completions or /costs as pre-filled (January 2024); GET /api/v1/llm/budgets shows live spend.',
    '',
  ];
  return lines.join('\n');
}

/**
 * `npm run demo`: fills a database with a realistic month of usage for a few orgs (see
 * src/demo/demo-data.ts), so Swagger UI shows meaningful numbers at once. Prepares the database as
 * `npm start` does (embedded PostgreSQL when DATABASE_URL is unset, migrations, the admin key).
 * Progress goes to stderr, the report with the demo keys to stdout, nothing secret to the log.
 */
export async function main(
  argv: string[] = process.argv.slice(2),
  env: Record<string, string | undefined> = process.env,
  io: { stdout: Output; stderr: Output } = { stdout: process.stdout, stderr: process.stderr },
): Promise<DemoReport> {
  const scale = parseScale(argv);
  // January 2024 is older than the default record retention (SPEC §8: 400 days): unless set, keep it.
  const retention = String(Math.ceil((Date.now() / 1000 - JANUARY_2024.start) / 86400) + 400);
  const config = loadConfig({
    RECORDS_RETENTION_DAYS: retention,
    MINUTE_ROLLUP_RETENTION_DAYS: retention,
    ...env,
    PROCESS_ROLE: 'api',
    LOG_LEVEL: env.LOG_LEVEL ?? 'warn',
  });
  const logger = createRootLogger(config.logLevel, pino.destination({ fd: 2, sync: true }));
  const { config: ready, cleanups } = await prepareDependencies(config, logger);
  stopOnSignal = async () => {
    for (const cleanup of [...cleanups].reverse()) await cleanup();
  };
  try {
    // The API's services without its HTTP server or the worker's job processors.
    const app = await NestFactory.createApplicationContext(AppModule.forRoot(ready), { logger: new NestPinoLogger(logger) });
    try {
      const bar = textProgressBar(io.stderr, 'records');
      const progress = (done: number, total: number) => {
        if (done === 0) io.stderr.write(`Loading ${total} demo completion records (scale ${scale})…\n`);
        bar(done, total);
      };
      const report = await fillDemo(app, { scale, now: Math.floor(Date.now() / 1000) }, progress);
      io.stdout.write(formatReport(report));
      return report;
    } finally {
      await app.close();
    }
  } finally {
    await stopOnSignal();
    stopOnSignal = undefined;
  }
}

/** Stops what start-up started (embedded PostgreSQL, a local Redis) when the command is interrupted. */
let stopOnSignal: (() => Promise<void>) | undefined;

if (require.main === module) {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void (stopOnSignal?.() ?? Promise.resolve()).finally(() => process.exit(130)));
  }
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(err instanceof DemoAlreadyLoaded ? 3 : 1);
  });
}

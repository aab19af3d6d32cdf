import { Client } from 'pg';
import { foldOnce } from '../../src/usage/rollup-journal';

/**
 * A rollup folder in its own process, for tests that SIGKILL it mid-fold: folds FOLD_LIMIT
 * journal rows per transaction and holds each transaction open FOLD_HOLD_MS before COMMIT, so a
 * kill lands inside a fold. Writes "begin" / "commit N" lines to stdout.
 * Run: node -r test/helpers/swc-register.js test/helpers/fold-child.ts
 */
async function main(): Promise<void> {
  const client = new Client({ connectionString: process.env.DATABASE_URL });
  await client.connect();
  const manager = { query: async (sql: string, params?: unknown[]) => (await client.query(sql, params)).rows };
  const limit = Number(process.env.FOLD_LIMIT ?? 50);
  const holdSeconds = Number(process.env.FOLD_HOLD_MS ?? 30) / 1000;
  for (;;) {
    await client.query('BEGIN');
    process.stdout.write('begin\n');
    const result = await foldOnce(manager, limit);
    await client.query('SELECT pg_sleep($1)', [holdSeconds]);
    await client.query('COMMIT');
    process.stdout.write(`commit ${result.deltas}\n`);
    if (result.deltas === 0) await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});

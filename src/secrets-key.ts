import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { DataSource } from 'typeorm';
import { openSecret } from './common/secret-box';
import { parseSecretsKey } from './config/app-config';

/**
 * SPEC §1 `SECRETS_KEY`: when unset, a key is generated once and kept under the data folder, with
 * a warning that instances sharing a database must share one ({@link checkSecretsKey} refuses to
 * start with a key that cannot open the webhook secrets the database already holds).
 */
export async function resolveSecretsKey(configured: Buffer | undefined, dataDir: string, logger: Logger): Promise<Buffer> {
  if (configured) return configured;
  const file = join(dataDir, 'secrets.key');
  let key: Buffer | undefined;
  if (existsSync(file)) {
    key = parseSecretsKey((await readFile(file, 'utf8')).trim());
    if (!key) throw new Error(`${file} does not hold a valid key; set SECRETS_KEY or remove the file`);
  } else {
    await mkdir(dataDir, { recursive: true, mode: 0o755 });
    key = randomBytes(32);
    await writeFile(file, key.toString('hex') + '\n', { mode: 0o600, flag: 'wx' }).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
      key = parseSecretsKey((await readFile(file, 'utf8')).trim());
    });
  }
  logger.warn(
    { context: 'Secrets', file },
    'SECRETS_KEY is unset: using a key kept in the data folder. Every instance sharing a database must use the same key: set SECRETS_KEY to it on each (an instance with another key cannot deliver webhooks).',
  );
  return key!;
}

/**
 * Refuses a key that cannot open a webhook secret stored in the database: an instance started
 * with another key (one generated for it alone) would fail every delivery it makes, silently.
 */
export async function checkSecretsKey(dataSource: DataSource, key: Buffer): Promise<void> {
  const [row] = (await dataSource.query(`SELECT webhook_secret_sealed AS sealed FROM budgets WHERE webhook_secret_sealed IS NOT NULL LIMIT 1`)) as Array<{ sealed: Buffer }>;
  if (!row) return;
  try {
    openSecret(key, row.sealed);
  } catch {
    throw new Error(
      'SECRETS_KEY does not open the webhook secrets stored in this database: they were sealed with another key. ' +
        'Every instance sharing a database must use the same SECRETS_KEY (a generated one is in DATA_DIR/secrets.key of the instance that made it).',
    );
  }
}

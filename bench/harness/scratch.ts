import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { Client } from 'pg';
import { deleteKeysWithPrefix, redisOptions } from '../../src/redis/redis';

export interface ScratchDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

async function withClient<T>(url: string, work: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** A new, empty database on the server of `serverUrl` (its own name each run); the service migrates it. */
export async function createScratchDatabase(serverUrl: string): Promise<ScratchDatabase> {
  const name = `tally_bench_${randomBytes(4).toString('hex')}`;
  await withClient(serverUrl, (c) => c.query(`CREATE DATABASE ${name}`));
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    drop: () => withClient(serverUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined),
  };
}

export async function serverVersion(url: string): Promise<string> {
  return withClient(url, async (c) => (await c.query('SHOW server_version')).rows[0].server_version as string);
}

/** Deletes every Redis key under `prefix:` (the run's own prefix). */
export const deleteRedisPrefix = deleteKeysWithPrefix;

export async function redisVersion(redisUrl: string): Promise<string> {
  const redis = new Redis(redisOptions(redisUrl, { lazyConnect: true }));
  await redis.connect();
  try {
    return /redis_version:(\S+)/.exec(await redis.info('server'))?.[1] ?? 'unknown';
  } finally {
    redis.disconnect();
  }
}

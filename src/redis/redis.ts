import { spawn, spawnSync } from 'node:child_process';
import Redis, { Cluster, RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { timeOutCommands } from './command-timeout';

/** ioredis options for a REDIS_URL; BullMQ workers need `maxRetriesPerRequest: null`. */
export function redisOptions(url: string, extra: RedisOptions = {}): RedisOptions {
  const parsed = new URL(url);
  return {
    host: parsed.hostname.replace(/^\[|\]$/g, ''),
    port: parsed.port ? Number(parsed.port) : 6379,
    username: parsed.username ? decodeURIComponent(parsed.username) : undefined,
    password: parsed.password ? decodeURIComponent(parsed.password) : undefined,
    db: parsed.pathname.length > 1 ? Number(parsed.pathname.slice(1)) : 0,
    tls: parsed.protocol === 'rediss:' ? {} : undefined,
    lazyConnect: false,
    enableReadyCheck: true,
    ...extra,
  };
}

/** Where Redis is: REDIS_URL, or a cluster's seed nodes (REDIS_CLUSTER_NODES). */
export interface RedisTarget {
  redisUrl: string;
  redisClusterNodes?: Array<{ host: string; port: number }>;
}

/**
 * A client of the configured Redis: a single server, or a Redis Cluster. A `commandTimeout` is
 * kept by {@link timeOutCommands}, not by ioredis (whose timer a pause of this process trips).
 */
export function createRedisClient(target: RedisTarget, extra: RedisOptions = {}): Redis | Cluster {
  const { commandTimeout, ...options } = extra;
  if (!target.redisClusterNodes) return timeOutCommands(new Redis(redisOptions(target.redisUrl, options)), commandTimeout);
  const { host: _host, port: _port, db: _db, ...shared } = redisOptions(target.redisUrl, options);
  return timeOutCommands(new Cluster(target.redisClusterNodes, { redisOptions: shared, enableReadyCheck: true, lazyConnect: options.lazyConnect }), commandTimeout);
}

/**
 * The prefix of every key, queue and channel. On a Redis Cluster it is a hash tag (`{tally}`), so
 * every key of the deployment hashes to one slot: Lua scripts, MGET, pipelines and each BullMQ
 * queue's keys then never span slots (see docs/scale.md).
 */
export function deploymentPrefix(config: RedisTarget & { redisPrefix: string }): string {
  return config.redisClusterNodes ? `{${config.redisPrefix}}` : config.redisPrefix;
}

/**
 * A copy of a client with other options (a Cluster's duplicate takes them per node, and its own
 * offline queue). It has a command timeout only when `options` give one.
 */
export function duplicateClient(client: Redis | Cluster, { commandTimeout, ...options }: RedisOptions): Redis | Cluster {
  if (!(client instanceof Cluster)) return timeOutCommands(client.duplicate(options), commandTimeout);
  const { enableOfflineQueue, lazyConnect, ...perNode } = options;
  return timeOutCommands(client.duplicate(undefined, { redisOptions: { ...client.options.redisOptions, ...perNode }, enableOfflineQueue, lazyConnect }), commandTimeout);
}

/** Whether Redis answers PING: the server at the URL, or the cluster (its state must be ok). */
export async function targetAnswers(target: RedisTarget, timeoutMs = 1500): Promise<boolean> {
  if (!target.redisClusterNodes) return redisAnswers(target.redisUrl, timeoutMs);
  const { host: _host, port: _port, db: _db, ...shared } = redisOptions(target.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: timeoutMs });
  // No retries: a cluster that is not ready yet must fail this probe, not make it wait forever.
  const cluster = new Cluster(target.redisClusterNodes, { redisOptions: shared, lazyConnect: true, clusterRetryStrategy: () => null });
  cluster.on('error', () => undefined);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error('timeout')), timeoutMs * 2);
  });
  try {
    const info = await Promise.race([cluster.connect().then(() => cluster.cluster('INFO')), timeout]);
    return /cluster_state:ok/.test(String(info));
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
    cluster.disconnect();
  }
}

export async function redisAnswers(url: string, timeoutMs = 1500): Promise<boolean> {
  return (await redisProblem(url, timeoutMs)) === null;
}

/**
 * Why Redis at `url` does not answer a PING: null when it does; `refused` when nothing listens (or
 * nothing answers in time); otherwise Redis' own error (a wrong password, a database index it
 * does not have), which means a Redis is there.
 */
async function redisProblem(url: string, timeoutMs: number): Promise<null | 'refused' | string> {
  const client = new Redis(
    redisOptions(url, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: timeoutMs, retryStrategy: () => null }),
  );
  client.on('error', () => undefined);
  try {
    await client.connect();
    // ioredis selects the URL's database after connecting and only reports a failure as an event:
    // select it here, so an index this Redis does not have is an error, not database 0.
    const db = redisOptions(url).db ?? 0;
    if (db !== 0) await client.select(db);
    return (await client.ping()) === 'PONG' ? null : 'refused';
  } catch (err) {
    return err instanceof Error && err.name === 'ReplyError' ? err.message : 'refused';
  } finally {
    client.disconnect();
  }
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/**
 * SPEC §1: when nothing answers at a loopback REDIS_URL and `redis-server` is on PATH, start a
 * local one for development (no persistence; stopped with this process), with a warning that
 * processes sharing a database must share a Redis that outlives them. Otherwise exit with a
 * message; never where a Redis answered with an error (a wrong password, a missing database index).
 */
export async function ensureRedis(url: string, logger: Logger): Promise<{ stop(): void } | undefined> {
  const problem = await redisProblem(url, 1500);
  if (problem === null) return undefined;
  const { hostname, port } = new URL(url);
  if (problem !== 'refused') throw new Error(`Redis at ${new URL(url).host} refused: ${problem} (check REDIS_URL)`);
  const onPath = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
  if (!isLoopback(hostname) || !onPath) {
    throw new Error(
      `Redis does not answer at ${new URL(url).host}. Start one (e.g. "apt-get install redis-server" then ` +
        '"redis-server --daemonize yes"), or set REDIS_URL to a Redis that runs.',
    );
  }
  const redisPort = port || '6379';
  logger.warn(
    { context: 'Redis', port: redisPort },
    'No Redis answered; starting a local redis-server for development. It keeps nothing on disk and stops with this process: ' +
      'processes that share the database must share a Redis that outlives them (set REDIS_URL to it).',
  );
  const child = spawn(
    'redis-server',
    ['--port', redisPort, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore', detached: false },
  );
  const stop = () => {
    if (child.exitCode === null) child.kill('SIGTERM');
  };
  process.once('exit', stop);
  for (let attempt = 0; attempt < 50; attempt++) {
    if (await redisAnswers(url, 500)) return { stop };
    await new Promise((r) => setTimeout(r, 100));
  }
  stop();
  throw new Error(`Started redis-server on port ${redisPort} but it does not answer`);
}

/** Deletes every key under `prefix:` (a test's or a benchmark's own namespace), by SCAN, never KEYS. */
export async function deleteKeysWithPrefix(url: string, prefix: string): Promise<void> {
  const redis = new Redis(redisOptions(url, { lazyConnect: true }));
  await redis.connect();
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      if (keys.length > 0) await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { guardRedis } from './redis-unavailable';

const EXTEND = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

export interface LockOptions {
  /** How long the lock outlives a process that died holding it; renewed every third of it while held. */
  ttlMs: number;
  /** Wait for the lock up to this long (0: give up at once). */
  waitMs?: number;
}

/**
 * Runs `work` while holding a Redis lock (SET NX with a token, renewed while held, released by
 * token): at most one holder at a time across every process. `{ acquired: false }` when another
 * holder kept it past `waitMs`.
 */
export async function withRedisLock<T>(redis: Redis, key: string, options: LockOptions, work: () => Promise<T>): Promise<{ acquired: true; result: T } | { acquired: false }> {
  const token = randomBytes(12).toString('hex');
  const giveUpAt = Date.now() + (options.waitMs ?? 0);
  for (;;) {
    if ((await guardRedis(redis, () => redis.set(key, token, 'PX', options.ttlMs, 'NX'))) === 'OK') break;
    if (Date.now() >= giveUpAt) return { acquired: false };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const renew = setInterval(() => void redis.eval(EXTEND, 1, key, token, String(options.ttlMs)).catch(() => undefined), Math.max(100, options.ttlMs / 3));
  renew.unref();
  try {
    return { acquired: true, result: await work() };
  } finally {
    clearInterval(renew);
    await redis.eval(RELEASE, 1, key, token).catch(() => undefined);
  }
}

/** Redis cannot be reached right now: the caller answers 503 `redis_unavailable` with Retry-After. */
export class RedisUnavailableError extends Error {
  constructor(override readonly cause?: unknown) {
    super('Redis is unavailable');
    this.name = 'RedisUnavailableError';
  }
}

const UNAVAILABLE_MESSAGES = /Stream isn't writeable|enableOfflineQueue|Command timed out|Connection is closed|Reached the max retries per request/i;
/** Network errors: Redis' only when they come out of a Redis call (see {@link guardRedis}). */
const NETWORK = /ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|^LOADING/;

/** True for the errors ioredis raises while Redis is down, unreachable, loading or hung. */
export function isRedisUnavailable(err: unknown): boolean {
  if (err instanceof RedisUnavailableError) return true;
  const e = err as { name?: unknown; message?: unknown } | null;
  if (!e) return false;
  if (e.name === 'MaxRetriesPerRequestError') return true;
  return typeof e.message === 'string' && UNAVAILABLE_MESSAGES.test(e.message);
}

/** After a command got no answer, calls on that client fail at once for this long (a hung Redis costs one timeout, not one per call). */
const SUSPECT_MS = 1000;
const suspectUntil = new WeakMap<object, number>();

/**
 * Runs a call on a Redis client, turning "Redis is down" errors into {@link RedisUnavailableError}.
 * While the client is not connected, or within a second of a command that got no answer, it
 * fails at once without trying.
 */
export async function guardRedis<T>(client: { status: string }, work: () => Promise<T>): Promise<T> {
  if (client.status !== 'ready' || (suspectUntil.get(client) ?? 0) > Date.now()) throw new RedisUnavailableError();
  try {
    return await work();
  } catch (err) {
    const message = (err as { message?: unknown } | null)?.message;
    if (typeof message === 'string' && /Command timed out/i.test(message)) suspectUntil.set(client, Date.now() + SUSPECT_MS);
    if (isRedisUnavailable(err) || (typeof message === 'string' && NETWORK.test(message))) throw new RedisUnavailableError(err);
    throw err;
  }
}

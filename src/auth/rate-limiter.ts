import { Inject, Injectable, Logger } from '@nestjs/common';
import Redis from 'ioredis';
import { AppException, ErrorCode, ErrorType } from '../common/errors';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import { REDIS, RedisKeys } from '../redis/redis.module';
import { guardRedis } from '../redis/redis-unavailable';
import { Role } from './role';

/**
 * GCRA (a token bucket as one timestamp): allows `burst` requests at once and `rate` per second
 * after that. Uses Redis' clock, so every API process shares one limit per key.
 * Returns {allowed (1/0), milliseconds until the next request would be allowed}.
 */
const GCRA = `
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - tolerance > now then return {0, new_tat - tolerance - now} end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now) + 1000)
return {1, 0}`;

@Injectable()
export class RateLimiter {
  private readonly logger = new Logger(RateLimiter.name);
  private warned = false;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(REDIS) private readonly redis: Redis,
    private readonly keys: RedisKeys,
  ) {}

  /** Throws a 429 with Retry-After when the key is over its rate. Fails open if Redis is down. */
  async consume(apiKeyId: string, role: Role): Promise<void> {
    const rate = role === Role.Ingest ? this.config.rateLimitIngestPerSecond : this.config.rateLimitPerSecond;
    if (rate === 0) return;
    let result: [number, number];
    try {
      // Fails at once while Redis is down or was just found hung (guardRedis), instead of waiting on every request.
      result = (await guardRedis(this.redis, () => this.redis.eval(GCRA, 1, this.keys.key('ratelimit', apiKeyId), String(1000 / rate), String(this.config.rateLimitBurst)))) as [number, number];
    } catch {
      if (!this.warned) this.logger.warn('Rate limiting is off while Redis does not answer');
      this.warned = true;
      return;
    }
    this.warned = false;
    if (result[0] === 1) return;
    const retryAfter = Math.max(1, Math.ceil(result[1] / 1000));
    throw new AppException(429, ErrorType.RateLimit, ErrorCode.RateLimited, `Rate limit exceeded for this API key; retry after ${retryAfter} s`, null, undefined, {
      'retry-after': String(retryAfter),
    });
  }
}

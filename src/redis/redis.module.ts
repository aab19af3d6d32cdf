import { Global, Inject, Injectable, Module, OnApplicationShutdown } from '@nestjs/common';
import Redis, { RedisOptions } from 'ioredis';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import { createRedisClient, deploymentPrefix } from './redis';

export const REDIS = Symbol('REDIS');

/**
 * The shared client serves request paths (the budget check, rate limits, state writes): while
 * Redis is down its commands fail at once (no offline queue), and one that gets no answer fails
 * after REDIS_COMMAND_TIMEOUT_MS, so callers answer 503 `redis_unavailable` instead of hanging.
 * It reconnects by itself. BullMQ has its own connections (its workers need to wait instead).
 */
export function requestPathRedisOptions(config: AppConfig): RedisOptions {
  return { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false, commandTimeout: config.redisCommandTimeoutMs, connectTimeout: 5000 };
}

/** Names every Redis key and channel of this deployment under one prefix. */
@Injectable()
export class RedisKeys {
  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

  key(...parts: string[]): string {
    return [deploymentPrefix(this.config), ...parts].join(':');
  }
}

@Injectable()
class RedisCloser implements OnApplicationShutdown {
  constructor(@Inject(REDIS) private readonly redis: Redis) {}
  async onApplicationShutdown(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

@Global()
@Module({
  providers: [
    RedisKeys,
    RedisCloser,
    {
      provide: REDIS,
      inject: [APP_CONFIG],
      useFactory: async (config: AppConfig) => {
        const client = createRedisClient(config, requestPathRedisOptions(config));
        client.on('error', () => undefined); // reconnects by itself; readiness reports the outage
        await client.connect();
        return client;
      },
    },
  ],
  exports: [REDIS, RedisKeys],
})
export class RedisModule {}

import { Global, Inject, Injectable, Module, OnApplicationShutdown } from '@nestjs/common';
import Redis from 'ioredis';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import { createRedisClient, deploymentPrefix } from './redis';

export const REDIS = Symbol('REDIS');

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
      useFactory: (config: AppConfig) => {
        const client = createRedisClient(config, { maxRetriesPerRequest: 2, connectTimeout: 5000 });
        client.on('error', () => undefined); // reconnects by itself; readiness reports the outage
        return client;
      },
    },
  ],
  exports: [REDIS, RedisKeys],
})
export class RedisModule {}

import { Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import Redis from 'ioredis';
import { CoherentCache } from '../redis/coherent-cache';
import { REDIS, RedisKeys } from '../redis/redis.module';
import { Role } from './role';

export interface CachedKey {
  id: string;
  orgId: string;
  role: Role;
  teamId: string | null;
  revoked: boolean;
}

const TTL_MS = 60_000;
const MAX_ENTRIES = 50_000;

/**
 * In-process cache of API keys by secret hash (and by id, for the budget check), so authentication does not hit the database on
 * every request. Revocation is broadcast on a Redis channel and drops the entry on every
 * process at once; while that subscription is down the cache is bypassed, so a missed message
 * can never keep a revoked key alive. Entries also expire after a minute.
 */
@Injectable()
export class ApiKeyCache implements OnModuleInit, OnApplicationShutdown {
  private readonly byHash: CoherentCache<CachedKey>;

  constructor(@Inject(REDIS) redis: Redis, keys: RedisKeys) {
    this.byHash = new CoherentCache(redis, {
      channel: keys.key('apikeys', 'revoked'),
      onMessage: (keyId) => this.byHash.dropWhere((key) => key.id === keyId),
      ttlMs: TTL_MS,
      maxEntries: MAX_ENTRIES,
      logger: new Logger(ApiKeyCache.name),
      lostWarning: 'Key revocation channel lost; authenticating from the database until it is back',
    });
  }

  onModuleInit(): Promise<void> {
    return this.byHash.start();
  }

  onApplicationShutdown(): Promise<void> {
    return this.byHash.stop();
  }

  get(hash: string): CachedKey | undefined {
    return this.byHash.get(hash);
  }

  /** A key by its id (the budget check asks whether it is revoked). */
  getById(keyId: string): CachedKey | undefined {
    return this.byHash.get(`id:${keyId}`);
  }

  setById(key: CachedKey, snapshot: number): void {
    this.byHash.set(`id:${key.id}`, key, snapshot);
  }

  /** Take before reading the database; pass to {@link set}. */
  snapshot(): number {
    return this.byHash.snapshot();
  }

  set(hash: string, key: CachedKey, snapshot: number): void {
    this.byHash.set(hash, key, snapshot);
  }

  /** Drops the key here and tells every other process to drop it too. */
  async revoked(keyId: string): Promise<void> {
    this.byHash.dropWhere((key) => key.id === keyId);
    await this.byHash.publish(keyId);
  }
}

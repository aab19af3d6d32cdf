import { Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import Redis from 'ioredis';
import { REDIS, RedisKeys } from '../redis/redis.module';
import { Role } from './role';

export interface CachedKey {
  id: string;
  orgId: string;
  role: Role;
  teamId: string | null;
  revoked: boolean;
}

interface Entry {
  key: CachedKey;
  expiresAt: number;
}

const TTL_MS = 60_000;
const MAX_ENTRIES = 50_000;

/**
 * In-process cache of API keys by secret hash, so authentication does not hit the database on
 * every request. Revocation is broadcast on a Redis channel and drops the entry on every
 * process at once; while that subscription is down the cache is bypassed, so a missed message
 * can never keep a revoked key alive. Entries also expire after a minute.
 */
@Injectable()
export class ApiKeyCache implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(ApiKeyCache.name);
  private readonly byHash = new Map<string, Entry>();
  private subscriber: Redis | undefined;
  private subscribed = false;
  /** Bumped by every revocation; a lookup that raced one is not cached. */
  private generation = 0;

  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    private readonly keys: RedisKeys,
  ) {}

  get channel(): string {
    return this.keys.key('apikeys', 'revoked');
  }

  async onModuleInit(): Promise<void> {
    const subscriber = this.redis.duplicate({ maxRetriesPerRequest: null });
    this.subscriber = subscriber;
    subscriber.on('error', () => undefined);
    const down = () => {
      if (this.subscribed) this.logger.warn('Key revocation channel lost; authenticating from the database until it is back');
      this.subscribed = false;
      this.byHash.clear();
    };
    subscriber.on('close', down);
    subscriber.on('reconnecting', down);
    // ioredis re-subscribes after a reconnect; the subscription is live again once it answers.
    subscriber.on('ready', () => {
      this.byHash.clear();
      this.subscribed = true;
    });
    subscriber.on('message', (_channel: string, keyId: string) => this.drop(keyId));
    await subscriber.subscribe(this.channel);
    this.subscribed = true;
  }

  async onApplicationShutdown(): Promise<void> {
    this.subscribed = false;
    await this.subscriber?.quit().catch(() => this.subscriber?.disconnect());
  }

  get(hash: string): CachedKey | undefined {
    if (!this.subscribed) return undefined;
    const entry = this.byHash.get(hash);
    if (!entry) return undefined;
    if (entry.expiresAt < Date.now()) {
      this.byHash.delete(hash);
      return undefined;
    }
    return entry.key;
  }

  /** Take before reading the database; pass to {@link set}. */
  snapshot(): number {
    return this.generation;
  }

  set(hash: string, key: CachedKey, snapshot: number): void {
    if (!this.subscribed || snapshot !== this.generation) return;
    if (this.byHash.size >= MAX_ENTRIES) this.byHash.delete(this.byHash.keys().next().value as string);
    this.byHash.set(hash, { key, expiresAt: Date.now() + TTL_MS });
  }

  /** Drops the key here and tells every other process to drop it too. */
  async revoked(keyId: string): Promise<void> {
    this.drop(keyId);
    await this.redis.publish(this.channel, keyId);
  }

  private drop(keyId: string): void {
    this.generation++;
    for (const [hash, entry] of this.byHash) {
      if (entry.key.id === keyId) this.byHash.delete(hash);
    }
  }
}

import { Logger } from '@nestjs/common';
import Redis, { Cluster } from 'ioredis';
import { duplicateClient } from './redis';

export interface CoherentCacheOptions {
  /** Redis pub/sub channel on which processes name stale entries. */
  channel: string;
  /** What a message means: which entries to drop (call {@link CoherentCache.drop} or `dropWhere`). */
  onMessage(payload: string): void;
  ttlMs: number;
  maxEntries: number;
  logger: Logger;
  /** Logged when the subscription is lost; says what the owner falls back to. */
  lostWarning: string;
}

/**
 * An in-process cache kept coherent across processes through a Redis pub/sub channel: a process
 * that changes the source of an entry drops it locally and publishes its name; every other
 * process drops it on the message. A message may be missed while the subscription is down, so
 * the cache is emptied and bypassed ({@link get} misses, {@link set} ignores) until ioredis has
 * re-subscribed. A read that raced a drop is not cached (take a {@link snapshot} before reading
 * the source). Entries also expire after `ttlMs`.
 */
export class CoherentCache<V> {
  private readonly entries = new Map<string, { value: V; expiresAt: number }>();
  private subscriber: Redis | Cluster | undefined;
  private subscribed = false;
  /** Bumped by every drop. */
  private generation = 0;

  constructor(
    private readonly redis: Redis | Cluster,
    private readonly options: CoherentCacheOptions,
  ) {}

  async start(): Promise<void> {
    const subscriber = duplicateClient(this.redis);
    this.subscriber = subscriber;
    subscriber.on('error', () => undefined);
    const down = () => {
      if (this.subscribed) this.options.logger.warn(this.options.lostWarning);
      this.subscribed = false;
      this.entries.clear();
    };
    subscriber.on('close', down);
    subscriber.on('reconnecting', down);
    // ioredis re-subscribes after a reconnect; the subscription is live again once it answers.
    subscriber.on('ready', () => {
      this.entries.clear();
      this.subscribed = true;
    });
    subscriber.on('message', (_channel: string, payload: string) => this.options.onMessage(payload));
    await subscriber.subscribe(this.options.channel);
    this.subscribed = true;
  }

  async stop(): Promise<void> {
    this.subscribed = false;
    await this.subscriber?.quit().catch(() => this.subscriber?.disconnect());
  }

  get(key: string): V | undefined {
    if (!this.subscribed) return undefined;
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt < Date.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  /** Take before reading the source; pass to {@link set}. */
  snapshot(): number {
    return this.generation;
  }

  set(key: string, value: V, snapshot: number): void {
    if (!this.subscribed || snapshot !== this.generation) return;
    if (this.entries.size >= this.options.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
    this.entries.set(key, { value, expiresAt: Date.now() + this.options.ttlMs });
  }

  drop(keys: Iterable<string>): void {
    this.generation++;
    for (const key of keys) this.entries.delete(key);
  }

  dropWhere(stale: (value: V) => boolean): void {
    this.generation++;
    for (const [key, entry] of this.entries) {
      if (stale(entry.value)) this.entries.delete(key);
    }
  }

  /** Tells every other process (this one drops its entries itself). */
  async publish(payload: string): Promise<void> {
    await this.redis.publish(this.options.channel, payload);
  }
}

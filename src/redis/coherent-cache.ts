import { Logger } from '@nestjs/common';
import Redis, { Cluster } from 'ioredis';
import { lateTimer } from '../common/late-timer';
import { duplicateClient } from './redis';

/** How often the subscription is checked (and how long a PING may take): a hung Redis is noticed within twice this. */
const HEARTBEAT_MS = 500;

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
 * the cache is emptied and bypassed ({@link get} misses, {@link set} ignores) until the channel is
 * subscribed again; both the loss and the re-subscription bump the generation, so a read that
 * started before either is never cached. A read that raced a drop is not cached (take a {@link snapshot} before reading
 * the source). Entries also expire after `ttlMs`.
 */
export class CoherentCache<V> {
  private readonly entries = new Map<string, { value: V; expiresAt: number }>();
  private subscriber: Redis | Cluster | undefined;
  private subscribed = false;
  /** Bumped by every drop, and when the subscription is lost or back. */
  private generation = 0;
  private heartbeat: NodeJS.Timeout | undefined;
  private beating = false;
  /** The last PING got no answer in time. */
  private silent = false;
  /** The connection that held the subscription at the last beat (see connectionOf). */
  private lastConnection: Redis | undefined;

  constructor(
    private readonly redis: Redis | Cluster,
    private readonly options: CoherentCacheOptions,
  ) {}

  async start(): Promise<void> {
    // Waits for Redis (offline queue, no command timeout): a subscription is not a request.
    const subscriber = duplicateClient(this.redis, { maxRetriesPerRequest: null, enableOfflineQueue: true, lazyConnect: false });
    this.subscriber = subscriber;
    subscriber.on('error', () => undefined);
    const down = () => {
      if (this.subscribed) this.options.logger.warn(this.options.lostWarning);
      this.subscribed = false;
      this.invalidate();
    };
    subscriber.on('close', down);
    subscriber.on('reconnecting', down);
    // ioredis re-subscribes after a reconnect, but `ready` may come before that subscription is in
    // place: the subscription is live once our own SUBSCRIBE (queued after it) has answered.
    subscriber.on('ready', () => {
      subscriber.subscribe(this.options.channel).then(
        () => {
          this.silent = false;
          this.invalidate();
          this.subscribed = true;
        },
        () => undefined, // lost again: the next `ready` tries again
      );
    });
    subscriber.on('message', (_channel: string, payload: string) => this.options.onMessage(payload));
    await subscriber.subscribe(this.options.channel);
    this.lastConnection = connectionOf(subscriber);
    this.invalidate();
    this.subscribed = true;
    this.heartbeat = setInterval(() => this.beat(subscriber), HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  /**
   * Forgets everything, and makes every read that started before unable to cache what it read
   * (it may have read a value whose change message this process has missed).
   */
  private invalidate(): void {
    this.generation++;
    this.entries.clear();
  }

  /**
   * A hung Redis leaves the connection open and silent: no message can arrive, and none is sent.
   * A PING that gets no answer in time counts as a lost subscription until one answers again.
   */
  private beat(subscriber: Redis | Cluster): void {
    if (this.beating || subscriber.status !== 'ready') return;
    const lost = () => {
      if (this.subscribed) this.options.logger.warn(this.options.lostWarning);
      this.subscribed = false;
      this.silent = true;
      this.invalidate();
    };
    const connection = connectionOf(subscriber);
    if (connection !== this.lastConnection) {
      // On a Cluster the subscription moved to another node's connection, re-subscribed without a
      // word to the Cluster object: what was published meanwhile is lost. Lost until the new
      // connection answers a PING (its re-SUBSCRIBE went before it).
      if (this.lastConnection !== undefined) lost();
      this.lastConnection = connection;
    }
    if (!connection || connection.status !== 'ready') return;
    this.beating = true;
    const late = lateTimer(HEARTBEAT_MS, lost);
    connection.ping().then(
      () => {
        late.cancel();
        this.beating = false;
        if (this.silent) {
          this.silent = false;
          this.invalidate();
          this.subscribed = true;
        }
      },
      () => {
        late.cancel();
        this.beating = false;
      },
    );
  }

  async stop(): Promise<void> {
    clearInterval(this.heartbeat);
    this.lastConnection = undefined;
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

/**
 * The connection that holds a subscriber's subscription, to PING: the client itself, or on a
 * Cluster the one node connection ioredis's ClusterSubscriber keeps (it replaces it when that node
 * goes away). A PING through the Cluster object would go to any node and prove nothing.
 */
function connectionOf(subscriber: Redis | Cluster): Redis | undefined {
  if (!(subscriber instanceof Cluster)) return subscriber;
  return (subscriber as unknown as { subscriber?: { getInstance(): Redis | null } }).subscriber?.getInstance() ?? undefined;
}

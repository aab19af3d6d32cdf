import { Inject, Injectable } from '@nestjs/common';
import Redis from 'ioredis';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import { REDIS, RedisKeys } from '../redis/redis.module';

/** A slot is held for at most one attempt's timeout plus this; a worker killed mid-attempt frees it then. */
const LEASE_MARGIN_MS = 5000;
/** The longest a deferred delivery waits before asking for a slot again. */
const MAX_DEFER_MS = 1000;

/**
 * Takes a slot for `ARGV[1]` (a job id) in the org's set unless `ARGV[2]` other jobs hold
 * unexpired ones. Scores are lease ends on Redis' own clock (TIME), so workers' clocks do not
 * matter. The same job asking again (retried after its worker died) gets its slot back.
 */
const ACQUIRE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], lease)
  return 1
end
return 0`;

/**
 * Per-org fairness of webhook delivery (SPEC §5, "tenants cannot hurt each other").
 *
 * Open-source BullMQ has no per-group concurrency (its "groups" are a BullMQ Pro feature): one
 * queue's jobs are taken in order by a fixed number of worker slots. Left alone, an org whose
 * receiver hangs to the timeout on many alerts fills every slot, and the next org's alert waits
 * behind all of them (50 hanging alerts at the default 10 s timeout held another org's alert for
 * about 30 s). So each delivery first takes one of its org's `WEBHOOK_ORG_CONCURRENCY` slots, a
 * Redis sorted set shared by every worker; a job that finds its org's slots taken is put back as
 * delayed for a moment (BullMQ `moveToDelayed`, which does not use up an attempt), and the worker
 * slot goes to the next job, another org's. One slow org then holds at most that many of a
 * worker's delivery slots, and the others' alerts go out at once. The operator's budgets on an org
 * (`owner: cluster`) have slots of their own beside the org's: the org's receivers never delay them.
 */
@Injectable()
export class DeliverySlots {
  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    private readonly keys: RedisKeys,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** True when the job may deliver now (release the slot afterwards); false when its group's slots are taken. `group`: the org and the budget's owner. */
  async acquire(group: string, jobId: string): Promise<boolean> {
    const lease = this.config.webhookTimeoutMs + LEASE_MARGIN_MS;
    const taken = await this.redis.eval(ACQUIRE, 1, this.key(group), jobId, this.config.webhookOrgConcurrency, lease);
    return taken === 1;
  }

  async release(group: string, jobId: string): Promise<void> {
    await this.redis.zrem(this.key(group), jobId);
  }

  /** How long a job that found no slot waits before it asks again (jittered, so deferred jobs spread out). */
  deferMs(): number {
    const base = Math.min(this.config.webhookTimeoutMs, MAX_DEFER_MS);
    return Math.round(base / 2 + Math.random() * (base / 2));
  }

  private key(group: string): string {
    return this.keys.key('deliver-slots', group);
  }
}

import type Redis from 'ioredis';
import type { AppConfig } from '../config/app-config';
import { RedisKeys } from '../redis/redis.module';
import { ReservationCounters } from './reservation-counters';
import { CounterWindow } from './reservation-counter-types';

// Redis Cluster's own slot function (CRC16 of the hash tag), as ioredis computes it (its dependency; no types).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const calculateSlot = require('cluster-key-slot') as (key: string) => number;

describe('reservation counter keys', () => {
  const counters = new ReservationCounters({} as Redis, new RedisKeys({ redisPrefix: 'tally' } as AppConfig));
  const window = (orgId: string, budgetId: string): CounterWindow => ({ orgId, budgetId, epoch: '0', start: 1796083200, end: 1796169600 });

  it('puts every key of an org in one Redis Cluster slot (hash tag {org_…}), and different orgs apart', () => {
    const keys = (orgId: string) => [
      ...counters.windowKeys(window(orgId, 'bud_a')),
      ...counters.windowKeys(window(orgId, 'bud_b')),
      counters.pendingKey(window(orgId, 'bud_a')),
    ];
    const slots = new Set(keys('org_3ZkQ9mW2pL8xYc4RtV7bN1sD').map((k) => calculateSlot(k)));
    expect(slots.size).toBe(1);
    expect(counters.windowKeys(window('org_3ZkQ9mW2pL8xYc4RtV7bN1sD', 'bud_a'))[0]).toBe('tally:rsv:{org_3ZkQ9mW2pL8xYc4RtV7bN1sD}:bud_a:1796083200:s');
    const other = new Set(keys('org_9pLm3QxW7vR2kT8cY4nB6sDz').map((k) => calculateSlot(k)));
    expect(other.size).toBe(1);
    expect([...other][0]).not.toBe([...slots][0]);
  });

  it('on Redis Cluster puts them under the deployment\'s {prefix} tag: the first {…} of the key is the one that counts', () => {
    const clustered = new ReservationCounters({} as Redis, new RedisKeys({ redisPrefix: 'tally', redisClusterNodes: [{ host: '127.0.0.1', port: 7000 }] } as AppConfig));
    const key = clustered.windowKeys(window('org_3ZkQ9mW2pL8xYc4RtV7bN1sD', 'bud_a'))[0];
    expect(key).toBe('{tally}:rsv:{org_3ZkQ9mW2pL8xYc4RtV7bN1sD}:bud_a:1796083200:s');
    const slots = new Set(
      ['org_3ZkQ9mW2pL8xYc4RtV7bN1sD', 'org_9pLm3QxW7vR2kT8cY4nB6sDz'].flatMap((org) => [
        ...clustered.windowKeys(window(org, 'bud_a')),
        clustered.pendingKey(window(org, 'bud_b')),
      ]).map((k) => calculateSlot(k)),
    );
    expect([...slots]).toEqual([calculateSlot('{tally}:anything')]);
  });
});

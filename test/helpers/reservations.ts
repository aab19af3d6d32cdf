import { budgetWindow } from '../../src/budgets/budget-window';
import { ReservationCounters } from '../../src/reservations/reservation-counters';
import { startPrivateRedis } from './private-redis';
import { createSystemKey, HttpResult, startTestApp, TestApp } from './test-app';

export const RESERVATIONS = '/api/v1/llm/budgets/reservations';

/** A daily budget blocking at 100 % of `limit` (tokens or major currency units). */
export function blockingBudget(kind: 'tokens' | 'cost', limit: number, extra: Record<string, unknown> = {}) {
  return { period: 'daily', limit_kind: kind, limit, thresholds: [{ pct: 100, action: 'block' }], ...extra };
}

let counter = 0;

export function reservationBody(apiKeyId: string, overrides: Record<string, unknown> = {}) {
  counter += 1;
  return { request_id: `gw-${process.pid}-${counter}`, api_key_id: apiKeyId, model: 'gpt-4o-mini', input_tokens: 50, max_output_tokens: 50, ...overrides };
}

export async function reserve(t: TestApp, key: string, body: Record<string, unknown>): Promise<HttpResult> {
  const res = await t.post(RESERVATIONS, body, { key });
  if (res.status !== 200) throw new Error(`reserve: ${res.status} ${res.text}`);
  return res;
}

/** The Redis counters of a daily budget in today's window (null when not loaded). */
export function counters(t: TestApp, orgId: string, budgetId: string) {
  const w = budgetWindow('daily', new Date());
  return t.app.get(ReservationCounters).read({ orgId, budgetId, epoch: '0', start: w.start.getTime() / 1000, end: w.end.getTime() / 1000 });
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** Two API processes on one database, sharing a redis-server of their own (tests flush it), and an ingest key. */
export interface TwoApiProcesses {
  a: TestApp;
  b: TestApp;
  redisUrl: string;
  ingestKey: string;
  close(): Promise<void>;
}

async function startTwoApiProcesses(): Promise<TwoApiProcesses> {
  const redis = await startPrivateRedis();
  const started: TestApp[] = [];
  // Closes what started, last first, each even when one before it fails.
  const closeAll = async (): Promise<void> => {
    const app = started.pop();
    if (!app) return redis.close();
    try {
      await app.close();
    } finally {
      await closeAll();
    }
  };
  try {
    const a = await startTestApp({ REDIS_URL: redis.url, PROCESS_ROLE: 'api' });
    started.push(a);
    const b = await startTestApp({ REDIS_URL: redis.url, REDIS_PREFIX: a.config.redisPrefix, PROCESS_ROLE: 'api' }, { database: a.db });
    started.push(b);
    const ingestKey = (await createSystemKey(a, 'ingest')).key;
    return { a, b, redisUrl: redis.url, ingestKey, close: closeAll };
  } catch (err) {
    await closeAll().catch(() => undefined);
    throw err;
  }
}

/** For a describe block: starts {@link startTwoApiProcesses} before its tests (handing them to `use`) and closes them after. */
export function twoApiProcessesPerSuite(use: (processes: TwoApiProcesses) => void): void {
  let processes: TwoApiProcesses | undefined;
  beforeAll(async () => {
    processes = await startTwoApiProcesses();
    use(processes);
  });
  afterAll(async () => {
    await processes?.close();
  });
}

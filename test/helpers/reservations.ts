import { budgetWindow } from '../../src/budgets/budget-window';
import { ReservationCounters } from '../../src/reservations/reservation-counters';
import { HttpResult, TestApp } from './test-app';

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
  return t.app.get(ReservationCounters).read({ orgId, budgetId, start: w.start.getTime() / 1000, end: w.end.getTime() / 1000 });
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

import { INestApplicationContext } from '@nestjs/common';
import { getQueueToken } from '@nestjs/bullmq';
import { Queue } from 'bullmq';
import { AlertEvaluatorService } from '../../src/alerts/alert-evaluator.service';
import { AlertQueue } from '../../src/alerts/alert-jobs';
import { costBudget } from './budgets';
import { TestApp } from './test-app';
import { ingestOk, record } from './usage';
import { waitFor } from './wait-for';

/** A monthly cost budget: a test never straddles a window's end unless it runs across a month's. */
export function monthlyBudget(limit: number, extra: Record<string, unknown> = {}) {
  return costBudget(limit, { period: 'monthly', ...extra });
}

/** Ingests one record of `costNano` for the key, now. */
export function spend(t: TestApp, ingestKey: string, apiKeyId: string, costNano: bigint | string) {
  return ingestOk(t, ingestKey, [record(apiKeyId, { created_at: Math.floor(Date.now() / 1000), cost_nano: String(costNano), input_tokens: 1, output_tokens: 1 })]);
}

export interface AlertRow {
  id: string;
  budget_id: string;
  window_start: Date;
  threshold_pct: string;
  threshold_action: string;
  state: string;
  body: string;
}

export async function alertRows(t: TestApp, budgetId: string): Promise<AlertRow[]> {
  return t.dataSource.query(`SELECT * FROM alerts WHERE budget_id = $1 ORDER BY threshold_pct, window_start`, [budgetId]);
}

/**
 * Runs evaluate-all in each app (several at once), then waits until no evaluation waits or runs
 * and no delivery is queued, running or waiting for a retry: nothing more can be sent after this
 * unless something new is enqueued.
 */
export async function settle(apps: INestApplicationContext[], rounds = 2): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    await Promise.all(apps.flatMap((app) => [app.get(AlertEvaluatorService).evaluateAll(), app.get(AlertEvaluatorService).evaluateAll()]));
  }
  const evaluate = apps[0].get<Queue>(getQueueToken(AlertQueue.Evaluate));
  const deliver = apps[0].get<Queue>(getQueueToken(AlertQueue.Deliver));
  await waitFor(async () => {
    const e = await evaluate.getJobCounts('waiting', 'active', 'prioritized');
    const d = await deliver.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
    return Object.values(e).every((n) => n === 0) && Object.values(d).every((n) => n === 0);
  }, 'the alert queues to drain');
}

/**
 * Moves a budget's created_at back (default 60 days): late records alert only for windows that
 * ended after the budget was created, so a test that sends records into past windows of a budget
 * it has just made dates the budget as if it had existed then.
 */
export async function backdateBudget(t: TestApp, budgetId: string, days = 60): Promise<void> {
  await t.dataSource.query(`UPDATE budgets SET created_at = created_at - make_interval(days => $2) WHERE id = $1`, [budgetId, days]);
}

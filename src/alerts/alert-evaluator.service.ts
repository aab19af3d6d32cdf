import { Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Counter } from 'prom-client';
import { DataSource } from 'typeorm';
import { BudgetScope } from '../budgets/budget.entity';
import { Evaluation } from '../budgets/budget-evaluation';
import { BudgetStateService } from '../budgets/budget-state.service';
import { describeError } from '../common/error-mapping';
import { newId } from '../common/ids';
import { numberToDecimalString } from '../common/money';
import { MetricsService } from '../metrics/metrics.service';
import { alertBody } from './alert-body';
import { AlertState } from './alert.entity';
import { AlertQueuesService } from './alert-queues.service';

/** Scopes per evaluate-all batch (a scope has at most two budgets: owner cluster and org). */
const SCOPE_PAGE = 200;
const REPAIR_PAGE = 500;

interface NewAlertRow {
  id: string;
  budgetId: string;
  windowStart: Date;
  windowEnd: Date;
  pct: string;
  action: string;
  body: string;
  state: AlertState;
  createdAt: Date;
}

const crossingKey = (budgetId: string, windowStart: Date, pct: number) => `${budgetId}|${windowStart.getTime()}|${pct}`;

/**
 * Turns budget evaluations into alerts: one row per (budget, window, threshold pct), enforced by
 * the unique index (INSERT … ON CONFLICT DO NOTHING), so any number of evaluators, retries and
 * restarts record a crossing once. Only the inserter enqueues the delivery, by a deterministic
 * job id; alerts left `pending` without a job (a crash between insert and enqueue) are enqueued
 * again by every evaluate-all run.
 */
@Injectable()
export class AlertEvaluatorService {
  private readonly logger = new Logger(AlertEvaluatorService.name);
  private readonly created: Counter<string>;

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly state: BudgetStateService,
    private readonly queues: AlertQueuesService,
    metrics: MetricsService,
  ) {
    this.created = metrics.counter('tally_alerts_created_total', 'Threshold alerts recorded, by threshold action', ['action']);
  }

  /**
   * Re-evaluates every budget, a page of scopes at a time (refreshing their block state in Redis
   * too), records crossings, then re-enqueues undelivered alerts.
   */
  async evaluateAll(): Promise<{ budgets: number; alerts: number; requeued: number }> {
    let budgets = 0;
    let alerts = 0;
    let after = { scope: '', scopeId: '' };
    for (;;) {
      const page: Array<{ scope: BudgetScope; scope_id: string }> = await this.dataSource.query(
        `SELECT DISTINCT scope, scope_id FROM budgets WHERE (scope, scope_id) > ($1, $2) ORDER BY scope, scope_id LIMIT $3`,
        [after.scope, after.scopeId, SCOPE_PAGE],
      );
      if (page.length === 0) break;
      const scopes = page.map((row) => ({ scope: row.scope, scopeId: row.scope_id }));
      const evaluations = await this.state.refreshScopes(scopes);
      budgets += evaluations.length;
      alerts += await this.recordCrossings(evaluations);
      after = scopes[scopes.length - 1];
    }
    return { budgets, alerts, requeued: await this.requeueUndelivered() };
  }

  async evaluateScope(scope: BudgetScope, scopeId: string): Promise<{ budgets: number; alerts: number }> {
    const evaluations = await this.state.refreshScope(scope, scopeId);
    return { budgets: evaluations.length, alerts: await this.recordCrossings(evaluations) };
  }

  /** Records every reached threshold not yet alerted in its window; returns how many alerts are new. */
  async recordCrossings(evaluations: Evaluation[]): Promise<number> {
    const reached = evaluations.filter((e) => e.reached.length > 0);
    if (reached.length === 0) return 0;
    const existing: Array<{ budget_id: string; window_start: Date; threshold_pct: string }> = await this.dataSource.query(
      `SELECT a.budget_id, a.window_start, a.threshold_pct::text AS threshold_pct
       FROM alerts a JOIN unnest($1::varchar[], $2::timestamptz[]) AS c(budget_id, window_start)
         ON a.budget_id = c.budget_id AND a.window_start = c.window_start`,
      [reached.map((e) => e.budget.id), reached.map((e) => e.window.start.toISOString())],
    );
    const known = new Set(existing.map((row) => crossingKey(row.budget_id, row.window_start, Number(row.threshold_pct))));
    const rows: NewAlertRow[] = [];
    const now = new Date();
    for (const evaluation of reached) {
      const { budget, window } = evaluation;
      const deliverable = budget.webhookUrl !== null && budget.webhookDisabledAt === null;
      for (const threshold of evaluation.reached) {
        if (known.has(crossingKey(budget.id, window.start, threshold.pct))) continue;
        const id = newId('alrt');
        rows.push({
          id,
          budgetId: budget.id,
          windowStart: window.start,
          windowEnd: window.end,
          pct: numberToDecimalString(threshold.pct),
          action: threshold.action,
          body: alertBody(id, now, evaluation, threshold),
          state: deliverable ? 'pending' : 'skipped',
          createdAt: now,
        });
      }
    }
    if (rows.length === 0) return 0;
    const inserted: Array<{ id: string; state: AlertState; threshold_action: string }> = await this.dataSource.query(
      `INSERT INTO alerts (org_id, id, budget_id, window_start, window_end, threshold_pct, threshold_action, body, state, created_at)
       SELECT b.org_id, c.* FROM unnest($1::varchar[], $2::varchar[], $3::timestamptz[], $4::timestamptz[], $5::numeric[], $6::varchar[], $7::text[], $8::varchar[], $9::timestamptz[])
         AS c(id, budget_id, window_start, window_end, threshold_pct, threshold_action, body, state, created_at)
       JOIN budgets b ON b.id = c.budget_id
       ON CONFLICT (org_id, budget_id, window_start, threshold_pct) DO NOTHING
       RETURNING id, state, threshold_action`,
      [
        rows.map((r) => r.id),
        rows.map((r) => r.budgetId),
        rows.map((r) => r.windowStart.toISOString()),
        rows.map((r) => r.windowEnd.toISOString()),
        rows.map((r) => r.pct),
        rows.map((r) => r.action),
        rows.map((r) => r.body),
        rows.map((r) => r.state),
        rows.map((r) => r.createdAt.toISOString()),
      ],
    );
    for (const row of inserted) this.created.inc({ action: row.threshold_action });
    const toDeliver = inserted.filter((row) => row.state === 'pending').map((row) => row.id);
    try {
      await this.queues.deliverAlerts(toDeliver);
    } catch (err) {
      // The rows are `pending`: the next evaluate-all run enqueues them again.
      this.logger.warn({ msg: 'Could not enqueue alert deliveries; the next evaluation will', alerts: toDeliver.length, ...describeError(err) });
    }
    return inserted.length;
  }

  /** Enqueues every `pending` alert again by its deterministic job id (a no-op while its job exists). */
  async requeueUndelivered(): Promise<number> {
    let count = 0;
    let after = '';
    for (;;) {
      const page: Array<{ id: string }> = await this.dataSource.query(
        `SELECT id FROM alerts WHERE state = 'pending' AND id > $1 ORDER BY id LIMIT $2`,
        [after, REPAIR_PAGE],
      );
      if (page.length === 0) break;
      await this.queues.deliverAlerts(page.map((row) => row.id));
      count += page.length;
      after = page[page.length - 1].id;
    }
    return count;
  }
}

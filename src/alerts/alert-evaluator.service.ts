import { Inject, Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import Redis from 'ioredis';
import { Counter } from 'prom-client';
import { DataSource } from 'typeorm';
import { ScopeRef } from '../budgets/budget-block-store';
import { Budget } from '../budgets/budget.entity';
import { Evaluation, existedDuring, previousWindow, windowsHolding } from '../budgets/budget-evaluation';
import { BudgetEvaluator, EvaluationTarget } from '../budgets/budget-evaluator';
import { BudgetStateRefresher } from '../budgets/budget-state-refresher';
import { BudgetRepository, UsageScopes } from '../budgets/budget.repository';
import { describeError } from '../common/error-mapping';
import { newId } from '../common/ids';
import { numberToDecimalString } from '../common/money';
import { MetricsService } from '../metrics/metrics.service';
import { REDIS, RedisKeys } from '../redis/redis.module';
import { withRedisLock } from '../redis/redis-lock';
import { guardRedis } from '../redis/redis-unavailable';
import { alertBody } from './alert-body';
import { AlertState } from './alert.entity';
import { AlertQueuesService } from './alert-queues.service';
import { EvaluationBacklog } from './evaluation-backlog';

/** Scopes per evaluate-all batch (a scope has at most two budgets: owner cluster and org). */
const SCOPE_PAGE = 200;
const REPAIR_PAGE = 500;
/** An evaluate-all run holds this lock (renewed while it runs), so runs never overlap. */
const EVALUATE_ALL_LOCK_TTL_MS = 15_000;
/** How long a previous window stays marked as evaluated after its boundary (beyond the late-record horizon). */
const PREVIOUS_WINDOW_MARK_TTL_S = 45 * 86_400;

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

const crossingKey = (budgetId: string, window: { start: Date; end: Date }, pct: number) => `${budgetId}|${window.start.getTime()}|${window.end.getTime()}|${pct}`;
const sameWindow = (a: Evaluation, b: EvaluationTarget) => a.budget.id === b.budget.id && a.window.start.getTime() === b.window.start.getTime();

export interface EvaluateAllResult {
  /** False when another run held the lock (a scheduled run then does nothing). */
  ran: boolean;
  budgets: number;
  alerts: number;
  requeued: number;
}

/**
 * Turns budget evaluations into alerts: one row per (budget, window, threshold pct), enforced by
 * the unique index (INSERT … ON CONFLICT DO NOTHING), so any number of evaluators, retries and
 * restarts record a crossing once. Every window counts: an evaluation after ingest evaluates the
 * windows its records fell in, and evaluate-all evaluates each budget's previous window once more
 * after a boundary. Only the inserter enqueues the delivery, by a deterministic job id; alerts
 * left `pending` without a job (a crash between insert and enqueue, Redis flushed) are enqueued
 * again by every evaluate-all run.
 */
@Injectable()
export class AlertEvaluatorService {
  private readonly logger = new Logger(AlertEvaluatorService.name);
  private readonly created: Counter<string>;

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    @Inject(REDIS) private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly repository: BudgetRepository,
    private readonly evaluator: BudgetEvaluator,
    private readonly refresher: BudgetStateRefresher,
    private readonly queues: AlertQueuesService,
    private readonly backlog: EvaluationBacklog,
    metrics: MetricsService,
  ) {
    this.created = metrics.counter('tally_alerts_created_total', 'Threshold alerts recorded, by threshold action', ['action']);
  }

  /**
   * The repair pass, run by the scheduler: re-evaluates every budget a page of scopes at a time
   * (rewriting their block state, and the state of blocking scopes that lost their budget),
   * records crossings in current and just-ended windows, runs the evaluations ingest could not
   * enqueue, then re-enqueues undelivered alerts. Runs never overlap, across every worker:
   * `waitMs` 0 skips when another run holds the lock (the scheduled job), otherwise waits.
   */
  async evaluateAll(options: { waitMs?: number } = { waitMs: 30_000 }): Promise<EvaluateAllResult> {
    const outcome = await withRedisLock(this.redis, this.keys.key('evaluate-all', 'lock'), { ttlMs: EVALUATE_ALL_LOCK_TTL_MS, waitMs: options.waitMs }, () => this.runEvaluateAll());
    return outcome.acquired ? outcome.result : { ran: false, budgets: 0, alerts: 0, requeued: 0 };
  }

  private async runEvaluateAll(): Promise<EvaluateAllResult> {
    let budgets = 0;
    let alerts = 0;
    const marks = new Set<string>();
    const rebuild = await this.refresher.beginRebuild();
    let after: ScopeRef | null = null;
    for (;;) {
      const scopes = await this.repository.scopePage(after, SCOPE_PAGE);
      if (scopes.length === 0) break;
      // Each page in the windows of its own moment: a run that crosses a reset must not write the
      // state of a window already over (it reads as not blocking) over a block of the new one.
      const now = new Date();
      const evaluations = await this.refresher.refreshScopes(scopes, now);
      const previous = await this.previousWindows(evaluations.map((e) => e.budget), now, marks);
      evaluations.push(...(await this.evaluator.evaluate(previous)));
      budgets += evaluations.length;
      alerts += await this.recordCrossings(evaluations);
      after = scopes[scopes.length - 1];
    }
    await this.refresher.repairOrphans();
    // Every scope's state is rewritten: the check may take a missing state for "no budget" again.
    await this.refresher.endRebuild(rebuild);
    alerts += await this.backlog.drain((request) => this.evaluateUsage(request, request.days));
    if (marks.size > 0) {
      const pipeline = this.redis.pipeline();
      for (const mark of marks) pipeline.set(mark, '1', 'EX', PREVIOUS_WINDOW_MARK_TTL_S);
      await guardRedis(this.redis, () => pipeline.exec());
    }
    return { ran: true, budgets, alerts, requeued: await this.requeueUndelivered() };
  }

  /** The previous windows of these budgets not yet evaluated since their boundary (their marks go in `marks`). */
  private async previousWindows(budgets: Budget[], now: Date, marks: Set<string>): Promise<EvaluationTarget[]> {
    const targets: Array<EvaluationTarget & { mark: string }> = [];
    for (const budget of budgets) {
      const window = this.evaluator.isolate(budget, () => previousWindow(budget, now));
      if (window && existedDuring(budget, window)) targets.push({ budget, window, mark: this.keys.key('evaluated-window', budget.period, String(window.start.getTime())) });
    }
    if (targets.length === 0) return [];
    const distinct = [...new Set(targets.map((t) => t.mark))];
    const done = await guardRedis(this.redis, () => this.redis.mget(...distinct));
    const evaluated = new Set(distinct.filter((_m, i) => done[i] !== null));
    const open = targets.filter((t) => !evaluated.has(t.mark));
    for (const t of open) marks.add(t.mark);
    return open;
  }

  /**
   * After ingest touched a scope (or a budget of it changed): refreshes its block state and
   * records crossings in its current window and, given `day` (UTC, YYYY-MM-DD), in the windows
   * holding that day.
   */
  async evaluateScope(scope: ScopeRef['scope'], scopeId: string, day?: string): Promise<{ budgets: number; alerts: number }> {
    const now = new Date();
    const evaluations = await this.refresher.refreshScopes([{ scope, scopeId }], now);
    if (day !== undefined) {
      const budgets = await this.repository.findByScopes([{ scope, scopeId }]);
      const targets = this.targetsHolding(budgets, [day], now).filter((t) => !evaluations.some((e) => sameWindow(e, t)));
      evaluations.push(...(await this.evaluator.evaluate(targets)));
    }
    return { budgets: evaluations.length, alerts: await this.recordCrossings(evaluations) };
  }

  /** An ingest's evaluation run inline (from the backlog): the budgets of the org, keys, teams and end users, in the windows of the days. */
  async evaluateUsage(scopes: UsageScopes, days: string[]): Promise<number> {
    const now = new Date();
    const [budgets] = await this.repository.findForUsage([scopes]);
    return this.recordCrossings(await this.evaluator.evaluate(this.targetsHolding(budgets, days, now)));
  }

  private targetsHolding(budgets: Budget[], days: string[], now: Date): EvaluationTarget[] {
    // A UTC day meets up to three local days of a budget in another time zone (local days last
    // 23 to 25 hours): every hour of it is sampled, so each local window holding a record is found.
    const instants = days
      .map((day) => new Date(`${day}T00:00:00Z`).getTime())
      .filter((ms) => !Number.isNaN(ms))
      .flatMap((ms) => Array.from({ length: 25 }, (_v, h) => new Date(Math.min(ms + h * 3_600_000, ms + 86_399_999))));
    return budgets.flatMap((budget) => (this.evaluator.isolate(budget, () => windowsHolding(budget, instants, now)) ?? []).map((window) => ({ budget, window })));
  }

  /** Records every reached threshold not yet alerted in its window; returns how many alerts are new. */
  async recordCrossings(evaluations: Evaluation[]): Promise<number> {
    const reached = evaluations.filter((e) => e.reached.length > 0);
    if (reached.length === 0) return 0;
    const existing: Array<{ budget_id: string; window_start: Date; window_end: Date; threshold_pct: string }> = await this.dataSource.query(
      `SELECT a.budget_id, a.window_start, a.window_end, a.threshold_pct::text AS threshold_pct
       FROM alerts a JOIN unnest($1::varchar[], $2::timestamptz[], $3::timestamptz[]) AS c(budget_id, window_start, window_end)
         ON a.budget_id = c.budget_id AND a.window_start = c.window_start AND a.window_end = c.window_end
       WHERE a.event_type = 'budget.threshold.crossed'`,
      [reached.map((e) => e.budget.id), reached.map((e) => e.window.start.toISOString()), reached.map((e) => e.window.end.toISOString())],
    );
    const known = new Set(existing.map((row) => crossingKey(row.budget_id, { start: row.window_start, end: row.window_end }, Number(row.threshold_pct))));
    const rows: NewAlertRow[] = [];
    // The budget each row was evaluated from (one budget may come from two reads: each row keeps its own).
    const definitions: Budget[] = [];
    const now = new Date();
    for (const evaluation of reached) {
      const { budget, window } = evaluation;
      const deliverable = budget.webhookUrl !== null && budget.webhookDisabledAt === null;
      for (const threshold of evaluation.reached) {
        if (known.has(crossingKey(budget.id, window, threshold.pct))) continue;
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
        definitions.push(budget);
      }
    }
    if (rows.length === 0) return 0;
    // Only while the budget is still the one evaluated: an evaluation that read it before a PUT
    // (a limit raised, a threshold removed) must not record a crossing the PUT has undone; the
    // PUT's own evaluation, enqueued after it, records what the budget reaches now.
    const inserted: Array<{ id: string; state: AlertState; threshold_action: string }> = await this.dataSource.query(
      `INSERT INTO alerts (org_id, id, budget_id, window_start, window_end, threshold_pct, threshold_action, body, state, created_at)
       SELECT b.org_id, c.id, c.budget_id, c.window_start, c.window_end, c.threshold_pct, c.threshold_action, c.body, c.state, c.created_at
       FROM unnest($1::varchar[], $2::varchar[], $3::timestamptz[], $4::timestamptz[], $5::numeric[], $6::varchar[], $7::text[], $8::varchar[], $9::timestamptz[],
                   $10::numeric[], $11::jsonb[], $12::varchar[], $13::varchar[], $14::varchar[])
         AS c(id, budget_id, window_start, window_end, threshold_pct, threshold_action, body, state, created_at, limit_value, thresholds, period, timezone, limit_kind)
       JOIN budgets b ON b.id = c.budget_id AND b.limit_value = c.limit_value AND b.thresholds = c.thresholds
         AND b.period = c.period AND b.timezone = c.timezone AND b.limit_kind = c.limit_kind
       ON CONFLICT (org_id, budget_id, window_start, window_end, threshold_pct, event_type) DO NOTHING
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
        definitions.map((b) => b.limitValue),
        definitions.map((b) => JSON.stringify(b.thresholds)),
        definitions.map((b) => b.period),
        definitions.map((b) => b.timezone),
        definitions.map((b) => b.limitKind),
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

import { Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { Evaluation } from '../budgets/budget-evaluation';
import { describeError } from '../common/error-mapping';
import { newId } from '../common/ids';
import { alertBody, RESOLVED_EVENT_TYPE } from './alert-body';
import { AlertQueuesService } from './alert-queues.service';

/**
 * `budget.threshold.resolved` (SPEC §5): after a budget changed, every `block` threshold crossed in
 * a window that holds now and no longer blocking in the budget's new evaluation (limit raised,
 * threshold removed or made an alert) gets one resolved event, at most once per (budget, window,
 * threshold) by the alerts' unique index. Window roll-over lifts blocks by `resets_at` and sends
 * nothing: only crossings of a window that still holds now are looked at.
 */
@Injectable()
export class AlertResolutionsService {
  private readonly logger = new Logger(AlertResolutionsService.name);

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly queues: AlertQueuesService,
  ) {}

  /** Records (and enqueues) the resolutions the budget's new evaluation implies; returns how many are new. */
  async recordResolutions(evaluation: Evaluation, now = new Date()): Promise<number> {
    const { budget } = evaluation;
    const crossed: Array<{ threshold_pct: string; window_start: Date; window_end: Date }> = await this.dataSource.query(
      `SELECT a.threshold_pct::text AS threshold_pct, a.window_start, a.window_end FROM alerts a
       WHERE a.org_id = $4 AND a.budget_id = $1 AND a.event_type = 'budget.threshold.crossed' AND a.threshold_action = 'block'
         AND a.window_start <= $2 AND a.window_end > $2
         AND NOT EXISTS (SELECT 1 FROM alerts r WHERE r.org_id = a.org_id AND r.budget_id = a.budget_id AND r.window_start = a.window_start
                         AND r.threshold_pct = a.threshold_pct AND r.event_type = $3)`,
      [budget.id, now.toISOString(), RESOLVED_EVENT_TYPE, budget.orgId],
    );
    const stillBlocking = new Set(evaluation.reached.filter((t) => t.action === 'block').map((t) => t.pct));
    const resolved = crossed.filter((row) => !stillBlocking.has(Number(row.threshold_pct)));
    if (resolved.length === 0) return 0;
    const deliverable = budget.webhookUrl !== null && budget.webhookDisabledAt === null;
    const rows = resolved.map((row) => {
      const id = newId('alrt');
      const window = { start: new Date(row.window_start), end: new Date(row.window_end) };
      const threshold = { pct: Number(row.threshold_pct), action: 'block' as const };
      return { id, row, body: alertBody(id, now, evaluation, threshold, RESOLVED_EVENT_TYPE, window) };
    });
    const inserted: Array<{ id: string; state: string }> = await this.dataSource.query(
      `INSERT INTO alerts (org_id, id, budget_id, window_start, window_end, threshold_pct, threshold_action, event_type, body, state, created_at)
       SELECT b.org_id, c.id, b.id, c.window_start, c.window_end, c.threshold_pct, 'block', $3::varchar, c.body, $4::varchar, $5::timestamptz
       FROM unnest($1::varchar[], $6::timestamptz[], $7::timestamptz[], $8::numeric[], $9::text[]) AS c(id, window_start, window_end, threshold_pct, body)
       JOIN budgets b ON b.id = $2::varchar
       ON CONFLICT (org_id, budget_id, window_start, threshold_pct, event_type) DO NOTHING
       RETURNING id, state`,
      [
        rows.map((r) => r.id),
        budget.id,
        RESOLVED_EVENT_TYPE,
        deliverable ? 'pending' : 'skipped',
        now.toISOString(),
        rows.map((r) => new Date(r.row.window_start).toISOString()),
        rows.map((r) => new Date(r.row.window_end).toISOString()),
        rows.map((r) => r.row.threshold_pct),
        rows.map((r) => r.body),
      ],
    );
    const toDeliver = inserted.filter((row) => row.state === 'pending').map((row) => row.id);
    try {
      await this.queues.deliverAlerts(toDeliver);
    } catch (err) {
      // The rows are `pending`: the next evaluate-all run enqueues them again.
      this.logger.warn({ msg: 'Could not enqueue resolved-event deliveries; the next evaluation will', alerts: toDeliver.length, ...describeError(err) });
    }
    return inserted.length;
  }
}

import { Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { Budget } from '../budgets/budget.entity';
import { Evaluation } from '../budgets/budget-evaluation';
import { describeError } from '../common/error-mapping';
import { newId } from '../common/ids';
import { alertBody, RESOLVED_EVENT_TYPE } from './alert-body';
import { AlertQueuesService } from './alert-queues.service';

/**
 * `budget.threshold.resolved` (SPEC §5): every `block` threshold crossed in a window that holds now
 * and no longer blocking gets one resolved event, at most once per (budget, window, threshold) by
 * the alerts' unique index. After a change: the thresholds absent from the budget's new evaluation
 * (limit raised, threshold removed or made an alert). At a deletion: all of them (a deleted budget
 * blocks nothing), recorded in the deletion's transaction. Window roll-over lifts blocks by
 * `resets_at` and sends nothing: only crossings of a window that still holds now are looked at.
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
    const stillBlocking = new Set(evaluation.reached.filter((t) => t.action === 'block').map((t) => t.pct));
    const inserted = await this.insert(this.dataSource.manager, evaluation, stillBlocking, now);
    await this.deliver(inserted.filter((row) => row.state === 'pending').map((row) => row.id));
    return inserted.length;
  }

  /**
   * At a deletion, inside its transaction and before the budget's row goes: records a resolution
   * for each crossed block threshold of a window that holds now (none when the budget was not
   * blocking), then copies the budget's webhook target (URL, sealed secret, previous secret while
   * rotating) into every alert of the budget still to be delivered, so their deliveries go on
   * without the budget row; alerts it can no longer deliver (no URL, disabled after 410) are
   * `skipped`. Answers the ids to enqueue once the transaction has committed ({@link deliver}).
   */
  async recordDeletion(manager: EntityManager, budget: Budget, evaluation: Evaluation | null, now = new Date()): Promise<string[]> {
    if (evaluation) await this.insert(manager, evaluation, new Set(), now);
    // UPDATE … RETURNING answers [rows, count] through TypeORM.
    const [pending]: [Array<{ id: string; state: string }>, number] = await manager.query(
      `UPDATE alerts a SET
         target_webhook_url = b.webhook_url,
         target_secret_sealed = b.webhook_secret_sealed,
         target_previous_secret_sealed = b.webhook_previous_secret_sealed,
         target_previous_secret_expires_at = b.webhook_previous_secret_expires_at,
         state = CASE WHEN b.webhook_url IS NULL OR b.webhook_secret_sealed IS NULL OR b.webhook_disabled_at IS NOT NULL THEN 'skipped' ELSE a.state END
       FROM budgets b
       WHERE b.id = $2 AND a.org_id = $1 AND a.budget_id = b.id AND a.state = 'pending'
       RETURNING a.id, a.state`,
      [budget.orgId, budget.id],
    );
    return pending.filter((row) => row.state === 'pending').map((row) => row.id);
  }

  /** Enqueues the deliveries of `pending` alerts; a failure leaves them to the next evaluate-all. */
  async deliver(alertIds: string[]): Promise<void> {
    if (alertIds.length === 0) return;
    try {
      await this.queues.deliverAlerts(alertIds);
    } catch (err) {
      // The rows are `pending`: the next evaluate-all run enqueues them again.
      this.logger.warn({ msg: 'Could not enqueue resolved-event deliveries; the next evaluation will', alerts: alertIds.length, ...describeError(err) });
    }
  }

  /** Inserts a resolution for each unresolved block crossing of a window holding now whose pct is not in `stillBlocking`. */
  private async insert(manager: EntityManager, evaluation: Evaluation, stillBlocking: Set<number>, now: Date): Promise<Array<{ id: string; state: string }>> {
    const { budget } = evaluation;
    const crossed: Array<{ threshold_pct: string; window_start: Date; window_end: Date }> = await manager.query(
      `SELECT a.threshold_pct::text AS threshold_pct, a.window_start, a.window_end FROM alerts a
       WHERE a.org_id = $4 AND a.budget_id = $1 AND a.event_type = 'budget.threshold.crossed' AND a.threshold_action = 'block'
         AND a.window_start <= $2 AND a.window_end > $2
         AND NOT EXISTS (SELECT 1 FROM alerts r WHERE r.org_id = a.org_id AND r.budget_id = a.budget_id AND r.window_start = a.window_start AND r.window_end = a.window_end
                         AND r.threshold_pct = a.threshold_pct AND r.event_type = $3)`,
      [budget.id, now.toISOString(), RESOLVED_EVENT_TYPE, budget.orgId],
    );
    const resolved = crossed.filter((row) => !stillBlocking.has(Number(row.threshold_pct)));
    if (resolved.length === 0) return [];
    const deliverable = budget.webhookUrl !== null && budget.webhookDisabledAt === null;
    const rows = resolved.map((row) => {
      const id = newId('alrt');
      const window = { start: new Date(row.window_start), end: new Date(row.window_end) };
      const threshold = { pct: Number(row.threshold_pct), action: 'block' as const };
      return { id, row, body: alertBody(id, now, evaluation, threshold, RESOLVED_EVENT_TYPE, window) };
    });
    return manager.query(
      `INSERT INTO alerts (org_id, id, budget_id, window_start, window_end, threshold_pct, threshold_action, event_type, body, state, created_at)
       SELECT b.org_id, c.id, b.id, c.window_start, c.window_end, c.threshold_pct, 'block', $3::varchar, c.body, $4::varchar, $5::timestamptz
       FROM unnest($1::varchar[], $6::timestamptz[], $7::timestamptz[], $8::numeric[], $9::text[]) AS c(id, window_start, window_end, threshold_pct, body)
       JOIN budgets b ON b.id = $2::varchar
       ON CONFLICT (org_id, budget_id, window_start, window_end, threshold_pct, event_type) DO NOTHING
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
  }
}

import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { unixSeconds } from '../common/unix-time';
import { Principal } from '../auth/principal';
import { formatWindow } from '../budgets/budget-window';
import type { WebhookUrlView } from '../budgets/budget.mapper';
import { BudgetsService } from '../budgets/budgets.service';
import { maskUrl } from '../common/masked-url';
import { AppException, ErrorCode, ErrorType } from '../common/errors';
import { newId } from '../common/ids';
import { AlertQueuesService } from './alert-queues.service';
import { ListDeliveriesQueryDto, WebhookDeliveryDto, WebhookDeliveryListDto } from './dto/delivery.dto';
import { WebhookDelivery } from './webhook-delivery.entity';

const DEFAULT_LIMIT = 20;

function notFoundAsNull(err: unknown): null {
  if (err instanceof AppException && err.status === 404) return null;
  throw err;
}

/** An attempt as the API shows it; `urlView` as for the budget's own webhook URL (SPEC §4). */
export function toDeliveryDto(d: WebhookDelivery, urlView: WebhookUrlView, timeZone = 'UTC'): WebhookDeliveryDto {
  const alert = d.alert!;
  const seconds = (date: Date | null) => (date === null ? null : unixSeconds(date));
  return {
    id: d.id,
    object: 'llm.budget.webhook_delivery',
    budget_id: d.budgetId,
    alert_id: d.alertId,
    event_type: alert.eventType,
    threshold: { pct: Number(alert.thresholdPct), action: alert.thresholdAction },
    window: formatWindow({ start: alert.windowStart, end: alert.windowEnd }, timeZone),
    trigger: d.trigger,
    attempt: d.attempt,
    status: d.status,
    status_code: d.statusCode,
    error: d.error,
    latency_ms: d.latencyMs,
    url: d.url === null || urlView === 'full' ? d.url : maskUrl(d.url),
    attempted_at: seconds(d.attemptedAt),
    next_retry_at: seconds(d.nextRetryAt),
    created_at: unixSeconds(d.createdAt),
  };
}

/** The delivery log behind the API: attempts of a visible budget, and redelivery. */
@Injectable()
export class DeliveryLogService {
  constructor(
    @InjectRepository(WebhookDelivery) private readonly deliveries: Repository<WebhookDelivery>,
    private readonly budgets: BudgetsService,
    private readonly queues: AlertQueuesService,
  ) {}

  /** Attempts of one budget, newest first, a page at a time (404 for a budget the principal may not see). */
  async list(principal: Principal, budgetId: string, query: ListDeliveriesQueryDto): Promise<WebhookDeliveryListDto> {
    const budget = await this.budgets.getVisible(principal, budgetId);
    const urlView = this.budgets.urlView(principal, budget);
    const limit = query.limit ?? DEFAULT_LIMIT;
    const qb = this.deliveries
      .createQueryBuilder('d')
      .innerJoinAndSelect('d.alert', 'a')
      .where('d.budget_id = :budgetId', { budgetId })
      .orderBy('d.created_at', 'DESC')
      .addOrderBy('d.id', 'DESC')
      .take(limit + 1);
    if (query.alert_id) qb.andWhere('d.alert_id = :alertId', { alertId: query.alert_id });
    if (query.after) {
      const cursor = await this.deliveries.findOneBy({ id: query.after, budgetId });
      if (!cursor) throw AppException.badRequest(ErrorCode.InvalidCursor, `after: no delivery '${query.after}' of this budget`, 'after');
      qb.andWhere('(d.created_at, d.id) < (SELECT c.created_at, c.id FROM webhook_deliveries c WHERE c.id = :after)', { after: query.after });
    }
    const rows = await qb.getMany();
    const page = rows.slice(0, limit);
    return { object: 'list', data: page.map((d) => toDeliveryDto(d, urlView, budget.timezone)), has_more: rows.length > limit, last_id: page.length > 0 ? page[page.length - 1].id : null };
  }

  /**
   * Queues a new attempt sequence for the alert of `deliveryId`: same `webhook-id`, same body, a
   * fresh timestamp and signature, sent to the budget's current URL. Returns its `pending` first
   * attempt. Throttled: while the alert's own delivery or an earlier redelivery of it is still
   * queued, running or waiting for a retry, the answer is a 409 (`delivery_in_progress`).
   */
  async redeliver(principal: Principal, deliveryId: string): Promise<WebhookDeliveryDto> {
    const source = await this.deliveries.findOne({ where: { id: deliveryId }, relations: { alert: true } });
    const budget = source ? await this.budgets.getVisible(principal, source.budgetId).catch(notFoundAsNull) : null;
    if (!source || !budget) throw AppException.notFound('Delivery', deliveryId);
    if (!budget.webhookUrl) throw AppException.conflict('The budget has no webhook URL');
    if (budget.webhookDisabledAt) {
      throw AppException.conflict('The budget\'s webhook is disabled (the receiver answered 410 Gone); set the budget again to re-enable it');
    }
    if (source.alert!.state === 'pending') throw inProgress('its delivery is still being attempted (see next_retry_at in the delivery log)');
    if (await this.queues.redeliveryInFlight(source.alertId)) throw inProgress('an earlier redelivery of it is still under way');
    const pending = this.deliveries.create({
      orgId: source.orgId,
      id: newId('dlv'),
      alertId: source.alertId,
      budgetId: source.budgetId,
      trigger: 'redelivery',
      attempt: 1,
      status: 'pending',
      url: budget.webhookUrl,
      statusCode: null,
      error: null,
      latencyMs: null,
      attemptedAt: null,
      nextRetryAt: null,
    });
    await this.deliveries.insert(pending);
    let inFlight: string | undefined;
    try {
      inFlight = await this.queues.redeliver({ alertId: source.alertId, deliveryId: pending.id });
    } catch (err) {
      await this.deliveries.delete({ id: pending.id });
      throw err;
    }
    // A concurrent request queued its own first (ours was a no-op): only one of them runs.
    const saved = await this.deliveries.findOneOrFail({ where: { id: pending.id }, relations: { alert: true } });
    if (inFlight !== pending.id && saved.status === 'pending') {
      await this.deliveries.delete({ id: pending.id, status: 'pending' });
      throw inProgress('an earlier redelivery of it is still under way');
    }
    return toDeliveryDto(saved, this.budgets.urlView(principal, budget), budget.timezone);
  }
}

function inProgress(why: string): AppException {
  return new AppException(
    409,
    ErrorType.Conflict,
    ErrorCode.DeliveryInProgress,
    `This alert cannot be redelivered now: ${why}. Redeliver it once that has ended.`,
  );
}

/** The 409 of a throttled redelivery, as documented. */
export const DELIVERY_IN_PROGRESS_EXAMPLE = inProgress('an earlier redelivery of it is still under way').body();

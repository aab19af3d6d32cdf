import { unixSeconds } from '../common/unix-time';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { UnrecoverableError } from 'bullmq';
import { Counter } from 'prom-client';
import { In, IsNull, Repository } from 'typeorm';
import { Budget } from '../budgets/budget.entity';
import { newId } from '../common/ids';
import { openSecret } from '../common/secret-box';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import { MetricsService } from '../metrics/metrics.service';
import { Alert, AlertState } from './alert.entity';
import { DeliverySlots } from './delivery-slots';
import { retryDelayMs } from './webhook-backoff';
import { DeliveryTrigger, WebhookDelivery } from './webhook-delivery.entity';
import { sendWebhook, SendResult } from './webhook-sender';
import { signatureHeaders } from './webhook-signature';

/** Where an alert goes and how it is signed: its budget's webhook, or the copy kept when the budget was deleted. */
interface WebhookTarget {
  url: string | null;
  disabled: boolean;
  secretSealed: Buffer | null;
  previousSecretSealed: Buffer | null;
  previousSecretExpiresAt: Date | null;
}

function budgetTarget(b: Budget): WebhookTarget {
  return {
    url: b.webhookUrl,
    disabled: b.webhookDisabledAt !== null,
    secretSealed: b.webhookSecretSealed,
    previousSecretSealed: b.webhookPreviousSecretSealed,
    previousSecretExpiresAt: b.webhookPreviousSecretExpiresAt,
  };
}

/** The target the deletion copied onto the alert (AlertResolutionsService.recordDeletion); null when none was. */
function deletedBudgetTarget(a: Alert): WebhookTarget | null {
  if (a.targetWebhookUrl === null) return null;
  return {
    url: a.targetWebhookUrl,
    disabled: false,
    secretSealed: a.targetSecretSealed,
    previousSecretSealed: a.targetPreviousSecretSealed,
    previousSecretExpiresAt: a.targetPreviousSecretExpiresAt,
  };
}

/**
 * Whose delivery slots an alert takes: its org's, kept apart by the budget's owner, so the org's
 * own receivers (hanging, say) never delay the operator's alerts on its `owner: cluster` budgets.
 * A deleted budget's owner is read from the alert's body, which holds the budget as it was.
 */
function slotGroup(alert: Alert, budget: Budget | null): string {
  let owner: string | undefined = budget?.owner;
  if (owner === undefined) {
    try {
      owner = (JSON.parse(alert.body) as { data?: { budget?: { owner?: string } } }).data?.budget?.owner;
    } catch {
      owner = undefined;
    }
  }
  return `${alert.orgId}:${owner ?? 'org'}`;
}

/** One attempt of a delivery job, as BullMQ runs it. */
export interface DeliveryAttempt {
  trigger: DeliveryTrigger;
  alertId: string;
  /** 1-based attempt of this job. */
  attempt: number;
  maxAttempts: number;
  jobId: string;
  retryBaseMs: number;
  /** A redelivery's `pending` row, which its first attempt fills in. */
  pendingDeliveryId?: string;
}

/** No attempt follows a 410 or the job's last attempt. */
function isLast(job: DeliveryAttempt, result: SendResult): boolean {
  return job.attempt >= job.maxAttempts || result.outcome === 'gone';
}

/** `deferred`: the org's delivery slots were all taken; the job is to be put back for a moment. */
export type AttemptOutcome = 'done' | 'deferred';

type AttemptRecord = Pick<WebhookDelivery, 'status' | 'url' | 'statusCode' | 'error' | 'latencyMs' | 'attemptedAt' | 'nextRetryAt'>;

/**
 * Makes one delivery attempt: signs the alert's stored body, POSTs it, logs the attempt, and
 * settles the alert. A failure throws so BullMQ retries with the webhook backoff; 410 disables
 * the budget's webhook and stops (UnrecoverableError).
 */
@Injectable()
export class WebhookDeliveryService {
  private readonly logger = new Logger('WebhookDelivery');
  private readonly attempts: Counter<string>;

  constructor(
    @InjectRepository(Alert) private readonly alerts: Repository<Alert>,
    @InjectRepository(Budget) private readonly budgets: Repository<Budget>,
    @InjectRepository(WebhookDelivery) private readonly deliveries: Repository<WebhookDelivery>,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly slots: DeliverySlots,
    metrics: MetricsService,
  ) {
    this.attempts = metrics.counter('tally_webhook_delivery_attempts_total', 'Webhook delivery attempts, by outcome', ['outcome']);
  }

  private readAlert(id: string): Promise<Alert | null> {
    return this.alerts.createQueryBuilder('a').addSelect('a.targetSecretSealed').addSelect('a.targetPreviousSecretSealed').where('a.id = :id', { id }).getOne();
  }

  async attempt(job: DeliveryAttempt): Promise<AttemptOutcome> {
    let alert = await this.readAlert(job.alertId);
    if (!alert) return 'done';
    // A crossing's own delivery stops once the alert is settled (e.g. re-enqueued after it finished).
    if (job.trigger === 'alert' && alert.state !== 'pending') return 'done';
    const budget = await this.budgets
      .createQueryBuilder('b')
      .addSelect('b.webhookSecretSealed')
      .addSelect('b.webhookPreviousSecretSealed')
      .where('b.id = :id', { id: alert.budgetId })
      .getOne();
    // Deleted after the alert was read: the delete copied its target into the alert in the same
    // transaction that removed the budget, so the alert is read again (the first read may predate it).
    if (!budget) alert = (await this.readAlert(job.alertId)) ?? alert;
    const target = budget ? budgetTarget(budget) : deletedBudgetTarget(alert);
    if (!target) {
      // Deleted without a target copied (it had nothing to deliver then): nothing to send, ever.
      if (job.trigger === 'alert') await this.settle(alert.id, 'skipped', ['pending']);
      return 'done';
    }
    if (!target.url || target.disabled || !target.secretSealed) {
      const reason = target.url ? 'webhook disabled after HTTP 410; set the budget again to re-enable it' : 'the budget has no webhook URL';
      if (job.trigger === 'alert') await this.settle(alert.id, 'skipped', ['pending']);
      if (job.pendingDeliveryId) {
        await this.log(job, alert, { status: 'failed', url: null, statusCode: null, error: reason, latencyMs: null, attemptedAt: new Date(), nextRetryAt: null });
      }
      return 'done';
    }
    // Per-org fairness (see DeliverySlots): at most WEBHOOK_ORG_CONCURRENCY of one org's deliveries
    // at once, apart for the org's own budgets and the operator's (owner cluster) on it.
    const url = target.url;
    const group = slotGroup(alert, budget);
    if (!(await this.slots.acquire(group, job.jobId))) return 'deferred';
    let result: SendResult;
    try {
      result = await this.send(alert, url, this.secrets(target), job);
    } finally {
      await this.slots.release(group, job.jobId).catch(() => undefined); // the lease ends by itself
    }

    if (result.outcome === 'success') {
      await this.settle(alert.id, 'delivered', ['pending', 'failed']);
      return 'done';
    }
    if (result.outcome === 'gone') {
      // Only the URL that answered 410 is disabled: a URL set since stays enabled (a deleted budget has none to disable).
      if (budget) await this.budgets.update({ id: budget.id, webhookUrl: url, webhookDisabledAt: IsNull() }, { webhookDisabledAt: new Date() });
      if (job.trigger === 'alert') await this.settle(alert.id, 'failed', ['pending']);
      throw new UnrecoverableError(result.error ?? 'HTTP 410');
    }
    // A redelivery that gives up leaves the alert's state alone (its own delivery may still be retrying).
    if (isLast(job, result) && job.trigger === 'alert') await this.settle(alert.id, 'failed', ['pending']);
    throw new Error(result.error ?? 'delivery failed');
  }

  /** The signing secret, and the previous one while that is within its 24 h of rotation. */
  private secrets(target: WebhookTarget): { current: string; previous: string | null } {
    const rotating = target.previousSecretSealed !== null && target.previousSecretExpiresAt !== null && target.previousSecretExpiresAt.getTime() > Date.now();
    return {
      current: openSecret(this.secretsKey, target.secretSealed!),
      previous: rotating ? openSecret(this.secretsKey, target.previousSecretSealed!) : null,
    };
  }

  /** Signs the stored body for this attempt's timestamp, POSTs it, counts it and logs it. */
  private async send(alert: Alert, url: string, secrets: { current: string; previous: string | null }, job: DeliveryAttempt): Promise<SendResult> {
    const attemptedAt = new Date();
    const timestamp = unixSeconds(attemptedAt);
    const result = await sendWebhook(new URL(url), alert.body, signatureHeaders(secrets.current, alert.id, timestamp, alert.body, secrets.previous), {
      timeoutMs: this.config.webhookTimeoutMs,
      allowPrivateTargets: this.config.webhookAllowPrivateTargets,
    });
    this.attempts.inc({ outcome: result.outcome });
    const last = isLast(job, result);
    if (result.outcome !== 'success') {
      // No URL in the log line: it may carry a token in its query string.
      const line = { alertId: alert.id, budgetId: alert.budgetId, attempt: job.attempt, outcome: result.outcome, statusCode: result.statusCode };
      if (last) this.logger.warn({ msg: 'Webhook delivery gave up', ...line });
      else this.logger.log({ msg: 'Webhook delivery attempt failed; it will be retried', ...line });
    }
    await this.log(job, alert, {
      status: result.outcome === 'success' ? 'succeeded' : 'failed',
      url,
      statusCode: result.statusCode,
      error: result.error,
      latencyMs: result.latencyMs,
      attemptedAt,
      nextRetryAt: result.outcome === 'success' || last ? null : new Date(Date.now() + retryDelayMs(job.attempt, job.retryBaseMs, job.jobId)),
    });
    return result;
  }

  /**
   * Settles the alert. A deleted budget's copied secrets go with it: nothing signs with them again
   * (a deleted budget's alerts cannot be redelivered).
   */
  private async settle(alertId: string, state: AlertState, from: AlertState[]): Promise<void> {
    await this.alerts.update(
      { id: alertId, state: In(from) },
      { state, targetSecretSealed: null, targetPreviousSecretSealed: null, ...(state === 'delivered' ? { deliveredAt: new Date() } : {}) },
    );
  }

  /** Fills in the redelivery's pending row on its first attempt; otherwise adds a row. */
  private async log(job: DeliveryAttempt, alert: Alert, record: AttemptRecord): Promise<void> {
    const values = { attempt: job.attempt, ...record };
    if (job.pendingDeliveryId) {
      const filled = await this.deliveries.update({ id: job.pendingDeliveryId, status: 'pending' }, values);
      if (filled.affected) return;
    }
    await this.deliveries.insert({ orgId: alert.orgId, id: newId('dlv'), alertId: alert.id, budgetId: alert.budgetId, trigger: job.trigger, ...values });
  }

  private get secretsKey(): Buffer {
    if (!this.config.secretsKey) throw new Error('SECRETS_KEY was not resolved at start-up');
    return this.config.secretsKey;
  }
}

import { unixSeconds } from '../common/unix-time';
import { maskUrl } from '../common/masked-url';
import { BudgetOwner, BudgetScope, LimitKind, Threshold, ThresholdAction } from '../budgets/budget.entity';
import { costToNumber, Evaluation, exactLimit } from '../budgets/budget-evaluation';
import { stringifyExact } from '../common/json-decimal';
import { BudgetPeriod, BudgetWindow, formatWindow } from '../budgets/budget-window';
import { displayScopeId } from '../budgets/budget-scope';

export const ALERT_EVENT_TYPE = 'budget.threshold.crossed';
/** Sent once when a crossed block threshold stops blocking within its window (SPEC §5). */
export const RESOLVED_EVENT_TYPE = 'budget.threshold.resolved';
export const ALERT_EVENT_TYPES = [ALERT_EVENT_TYPE, RESOLVED_EVENT_TYPE] as const;
export type AlertEventType = (typeof ALERT_EVENT_TYPES)[number];

/*
 * The webhook body is a contract with receivers outside Tally (SPEC §5), so it has its own types
 * here, written out field by field, instead of reusing the REST budget DTO: a change to the API's
 * budget object does not change what webhooks send. test/alerts-body.e2e-spec.ts pins the fields.
 */

/** The budget's spend in the alert's window, at the time of the alert. */
export interface WebhookSpend {
  /** ISO 8601 interval of the window. */
  window: string;
  /** Exact cost, integer nano-units, as a decimal string. */
  cost_spent_nano: string;
  /** The same cost in major units (display only). */
  cost_spent: number;
  /** Tokens, as a decimal string. */
  tokens_spent: string;
  /** Spend as a percentage of the limit. */
  pct: number;
  /** Unix seconds at which the window ends. */
  resets_at: number;
  /** Unix seconds at which the block limit is reached at the window's average rate so far, or null. */
  forecast_exhaustion_at: number | null;
}

/** The budget object of the webhook body (the seed's budget fields, with its spend at the time of the alert). */
export interface WebhookBudget {
  id: string;
  object: 'llm.budget';
  scope: BudgetScope;
  scope_id: string;
  org_id: string;
  owner: BudgetOwner;
  period: BudgetPeriod;
  /** IANA time zone of the windows. */
  timezone: string;
  limit_kind: LimitKind;
  limit: number;
  thresholds: Array<{ pct: number; action: ThresholdAction }>;
  /** The URL this alert was sent to (the receiver's own). */
  alert_webhook_url: string | null;
  spend: WebhookSpend;
  /** Unix seconds. */
  created_at: number;
  updated_at: number;
}

/** The webhook body of SPEC §5. */
export interface AlertEvent {
  id: string;
  type: AlertEventType;
  /** Unix seconds. */
  created_at: number;
  data: {
    budget: WebhookBudget;
    threshold: { pct: number; action: ThresholdAction };
    /** The window the threshold was crossed in (ISO 8601 interval). */
    window: string;
  };
}

/** The budget of an evaluation as the webhook contract shows it. */
export function webhookBudget(e: Evaluation): WebhookBudget {
  const b = e.budget;
  return {
    id: b.id,
    object: 'llm.budget',
    scope: b.scope,
    scope_id: displayScopeId(b),
    org_id: b.orgId,
    owner: b.owner,
    period: b.period,
    timezone: b.timezone,
    limit_kind: b.limitKind,
    // Every digit it was set with, as the API answers it (a double kept 17 significant digits).
    limit: exactLimit(b) as unknown as number,
    thresholds: b.thresholds.map((t) => ({ pct: t.pct, action: t.action })),
    // Cut to scheme://host/… as for callers who may not change the budget (SPEC §4): the body is
    // fixed when the alert is recorded, and a retry or a redelivery after the URL changed goes to
    // the new receiver, which must not learn the old URL's token.
    alert_webhook_url: b.webhookUrl === null ? null : maskUrl(b.webhookUrl),
    spend: {
      window: formatWindow(e.window, b.timezone),
      cost_spent_nano: e.spend.costNano.toString(),
      cost_spent: costToNumber(e.spend.costNano),
      tokens_spent: e.spend.tokens.toString(),
      pct: e.pct,
      resets_at: unixSeconds(e.window.end),
      forecast_exhaustion_at: e.forecastExhaustionAt,
    },
    created_at: unixSeconds(b.createdAt),
    updated_at: unixSeconds(b.updatedAt),
  };
}

/**
 * The exact bytes every attempt of this alert sends (serialised once, stored with the alert).
 * `window` is the crossing's window (the evaluation's by default).
 */
export function alertBody(
  id: string,
  createdAt: Date,
  evaluation: Evaluation,
  threshold: Threshold,
  type: AlertEventType = ALERT_EVENT_TYPE,
  window: BudgetWindow = evaluation.window,
): string {
  const event: AlertEvent = {
    id,
    type,
    created_at: unixSeconds(createdAt),
    data: {
      budget: webhookBudget(evaluation),
      threshold: { pct: threshold.pct, action: threshold.action },
      window: formatWindow(window, evaluation.budget.timezone),
    },
  };
  return stringifyExact(event);
}

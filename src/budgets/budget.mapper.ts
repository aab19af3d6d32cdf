import { unixSeconds } from '../common/unix-time';
import { maskUrl } from '../common/masked-url';
import { costToNumber, Evaluation, exactLimit } from './budget-evaluation';
import { formatWindow } from './budget-window';
import { displayScopeId } from './budget-scope';
import { BudgetDto } from './dto/budget.dto';

/**
 * Whether the reader sees the webhook URL in full (`full`: it may change the budget, or the
 * receiver itself reads it in an alert body) or cut to `scheme://host/…` (SPEC §4).
 */
export type WebhookUrlView = 'full' | 'masked';

/** The seed's budget object, with its live spend. */
export function toBudgetDto(e: Evaluation, urlView: WebhookUrlView): BudgetDto {
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
    // Exactly as stored (numeric, 9 decimals), written as a JSON number with every digit.
    limit: exactLimit(b),
    thresholds: b.thresholds.map((t) => ({ pct: t.pct, action: t.action })),
    alert_webhook_url: b.webhookUrl === null || urlView === 'full' ? b.webhookUrl : maskUrl(b.webhookUrl),
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


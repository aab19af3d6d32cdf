import type { Examples } from '../../common/api-responses';

/**
 * Bodies shown in the OpenAPI document (and pre-filled by Swagger UI's "Try it out"). The set
 * request is the MKA1 seed's (budgets-set-apikey.txt), exactly as its SDK example sends it.
 */
export const SET_BUDGET_REQUEST_EXAMPLES: Examples = {
  mka1: {
    summary: "The MKA1 SDK example: weekly token budget, alert at pct 793338 (any pct up to 1,000,000,000)",
    value: { period: 'weekly', limit_kind: 'tokens', limit: 3281.35, thresholds: [{ pct: 793338, action: 'alert' }] },
  },
  withBlockAndWebhook: {
    summary: 'Monthly cost budget: alert at 80%, block at 100%, webhook alerts',
    value: {
      period: 'monthly',
      limit_kind: 'cost',
      limit: 500,
      thresholds: [
        { pct: 80, action: 'alert' },
        { pct: 100, action: 'block' },
      ],
      webhook_url: 'https://hooks.example.com/tally',
    },
  },
};

const BUDGET = {
  id: 'bud_4kQ9mW2pL8xYc4RtV7bN1sDa',
  object: 'llm.budget',
  scope: 'apikey',
  scope_id: 'key_8hYt2LmQ4xWv9RkP3sZc6NbD',
  org_id: 'org_3ZkQ9mW2pL8xYc4RtV7bN1sD',
  owner: 'org',
  period: 'weekly',
  limit_kind: 'tokens',
  limit: 3281.35,
  thresholds: [{ pct: 80, action: 'alert' }],
  alert_webhook_url: null,
  spend: {
    window: '2026-11-16T00:00:00Z/2026-11-23T00:00:00Z',
    cost_spent_nano: '1250000',
    cost_spent: 0.00125,
    tokens_spent: '1820',
    pct: 55.464976,
    resets_at: 1795392000,
  },
  created_at: 1794994200,
  updated_at: 1794994200,
};

/** The answer of a set on either scope: the budget with its live spend. */
export function budgetResponseExamples(scope: 'apikey' | 'org'): Examples {
  const scopeId = scope === 'org' ? BUDGET.org_id : BUDGET.scope_id;
  return { tokensWeekly: { summary: 'The weekly token budget, 55% spent', value: { ...BUDGET, scope, scope_id: scopeId } } };
}

export const BUDGET_CHECK_REQUEST_EXAMPLES: Examples = {
  check: { summary: 'Before a request of this key', value: { api_key_id: 'key_8hYt2LmQ4xWv9RkP3sZc6NbD' } },
};

export const BUDGET_CHECK_RESPONSE_EXAMPLES: Examples = {
  allowed: { summary: 'No block threshold reached', value: { allowed: true, blocked_by: [] } },
  blocked: {
    summary: "The org's cluster budget is spent",
    value: {
      allowed: false,
      blocked_by: [{ budget_id: 'bud_7pW2xLm9QaRt4YcN8vKs3DhE', scope: 'org', owner: 'cluster', pct: 104.2, resets_at: 1796083200 }],
    },
  },
  revoked: { summary: 'The key is revoked: never allowed', value: { allowed: false, reason: 'api_key_revoked', blocked_by: [] } },
};

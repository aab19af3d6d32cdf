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
  localDay: {
    summary: 'Daily cost budget in a local time zone: days start at midnight in Europe/Amsterdam',
    value: { period: 'daily', timezone: 'Europe/Amsterdam', limit_kind: 'cost', limit: 20, thresholds: [{ pct: 100, action: 'block' }] },
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
  timezone: 'UTC',
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
    forecast_exhaustion_at: null,
  },
  created_at: 1794994200,
  updated_at: 1794994200,
};

const SCOPE_EXAMPLE_IDS = { apikey: BUDGET.scope_id, org: BUDGET.org_id, team: 'team-search', user: 'user_123' } as const;

/** The answer of a set on a scope: the budget with its live spend (for teams and users, in a local time zone). */
export function budgetResponseExamples(scope: 'apikey' | 'org' | 'team' | 'user'): Examples {
  const value = { ...BUDGET, scope, scope_id: SCOPE_EXAMPLE_IDS[scope] };
  if (scope === 'team' || scope === 'user') {
    return {
      costDailyAmsterdam: {
        summary: `A daily cost budget of ${scope === 'team' ? 'a team' : 'an end user'} in Europe/Amsterdam, on the 23-hour day of March 2026`,
        value: {
          ...value,
          period: 'daily',
          timezone: 'Europe/Amsterdam',
          limit_kind: 'cost',
          limit: 20,
          thresholds: [
            { pct: 80, action: 'alert' },
            { pct: 100, action: 'block' },
          ],
          spend: {
            window: '2026-03-29T00:00:00+01:00/2026-03-30T00:00:00+02:00',
            cost_spent_nano: '12500000000',
            cost_spent: 12.5,
            tokens_spent: '1820000',
            pct: 62.5,
            resets_at: 1774821600,
            forecast_exhaustion_at: 1774807920,
          },
        },
      },
    };
  }
  return { tokensWeekly: { summary: 'The weekly token budget, 55% spent', value } };
}

export const BUDGET_CHECK_REQUEST_EXAMPLES: Examples = {
  check: { summary: 'Before a request of this key', value: { api_key_id: 'key_8hYt2LmQ4xWv9RkP3sZc6NbD' } },
  endUser: { summary: 'Before a request of this key on behalf of an end user', value: { api_key_id: 'key_8hYt2LmQ4xWv9RkP3sZc6NbD', user_id: 'user_123' } },
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

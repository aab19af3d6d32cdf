import type { Examples } from '../../common/api-responses';

export const CREATE_RESERVATION_EXAMPLES: Examples = {
  reserve: {
    summary: 'Reserve before calling the model',
    value: { request_id: 'gw-req-123', api_key_id: 'key_8hYt2LmQ4xWv9RkP3sZc6NbD', model: 'gpt-4o-mini', input_tokens: 1200, max_output_tokens: 4096, min_output_tokens: 1, ttl_seconds: 600 },
  },
};

const BASE = {
  object: 'llm.budget.reservation',
  id: 'res_7mQ2xLp9RkT4vW8cY3nB6sDa',
  request_id: 'gw-req-123',
  api_key_id: 'key_8hYt2LmQ4xWv9RkP3sZc6NbD',
  model: 'gpt-4o-mini',
};
const KEY_BUDGET = { budget_id: 'bud_4kQ9mW2pL8xYc4RtV7bN1sDa', scope: 'apikey', owner: 'org' };
const ORG_BUDGET = { budget_id: 'bud_9pLm3QxW7vR2kT8cY4nB6sDz', scope: 'org', owner: 'cluster' };
const RESETS_AT = 1795392000;
const denied = (reason: string, budgets: unknown[], deniedBy = [{ ...KEY_BUDGET, reason, resets_at: RESETS_AT }], retryAfter: number | null = 86400) => ({
  ...BASE,
  status: 'denied',
  allowed: false,
  granted_output_tokens: 0,
  reserved: { tokens: '0', cost_nano: '0' },
  expires_at: null,
  retry_after: retryAfter,
  denied_by: deniedBy,
  budgets,
});

export const RESERVATION_RESPONSE_EXAMPLES: Examples = {
  granted: {
    summary: 'Granted in full: every applicable budget can afford max_output_tokens',
    value: {
      ...BASE,
      status: 'held',
      allowed: true,
      granted_output_tokens: 4096,
      reserved: { tokens: '5296', cost_nano: '2637600' },
      expires_at: 1795300200,
      retry_after: null,
      denied_by: [],
      budgets: [
        { ...KEY_BUDGET, limit_kind: 'tokens', block_limit: '100000', committed: '60000', held: '12296', remaining: '27704', resets_at: RESETS_AT },
        { ...ORG_BUDGET, limit_kind: 'cost', block_limit: '500000000000', committed: '120000000000', held: '2637600', remaining: '379997362400', resets_at: 1796083200 },
      ],
    },
  },
  partial: {
    summary: 'Partial grant: 1,000 tokens left, 400 input → 600 output tokens granted; cap the call there',
    value: {
      ...BASE,
      status: 'held',
      allowed: true,
      granted_output_tokens: 600,
      reserved: { tokens: '1000', cost_nano: '420000' },
      expires_at: 1795300200,
      retry_after: null,
      denied_by: [],
      budgets: [{ ...KEY_BUDGET, limit_kind: 'tokens', block_limit: '10000', committed: '9000', held: '1000', remaining: '0', resets_at: RESETS_AT }],
    },
  },
  budgetExhausted: {
    summary: 'Denied: nothing left in the window (budget_exhausted)',
    value: denied('budget_exhausted', [{ ...KEY_BUDGET, limit_kind: 'tokens', block_limit: '10000', committed: '10000', held: '0', remaining: '0', resets_at: RESETS_AT }]),
  },
  insufficientBudget: {
    summary: 'Denied: less than min_output_tokens fits (insufficient_budget); nothing is held',
    value: denied('insufficient_budget', [{ ...KEY_BUDGET, limit_kind: 'tokens', block_limit: '10000', committed: '9000', held: '0', remaining: '1000', resets_at: RESETS_AT }]),
  },
  unpricedModel: {
    summary: 'Denied: a cost budget applies and the model has no price (unpriced_model)',
    value: denied(
      'unpriced_model',
      [{ ...ORG_BUDGET, limit_kind: 'cost', block_limit: '500000000000', committed: '120000000000', held: '0', remaining: '380000000000', resets_at: 1796083200 }],
      [{ ...ORG_BUDGET, reason: 'unpriced_model', resets_at: 1796083200 }],
      null,
    ),
  },
  apiKeyRevoked: {
    summary: 'Denied: the API key is revoked (reason api_key_revoked, as the check); no budget is read, nothing is held',
    value: { ...denied('budget_exhausted', [], [], null), reason: 'api_key_revoked' },
  },
};

export const RESERVATION_STATE_EXAMPLES: Examples = {
  settled: {
    summary: 'Settled by its usage record',
    value: { ...(RESERVATION_RESPONSE_EXAMPLES.granted.value as object), status: 'settled' },
  },
  released: {
    summary: 'Released (the call failed); its hold no longer counts',
    value: { ...(RESERVATION_RESPONSE_EXAMPLES.granted.value as object), status: 'released' },
  },
  expired: {
    summary: 'Expired: neither settled nor released by expires_at',
    value: { ...(RESERVATION_RESPONSE_EXAMPLES.granted.value as object), status: 'expired' },
  },
};

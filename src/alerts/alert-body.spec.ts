import { Budget } from '../budgets/budget.entity';
import { evaluateBudget } from '../budgets/budget-evaluation';
import { alertBody } from './alert-body';

/** The webhook body is a contract (SPEC §5): these are its exact bytes for a known evaluation. */
describe('alertBody', () => {
  const budget = Object.assign(new Budget(), {
    id: 'bud_4kQ9mW2pL8xYc4RtV7bN1sDa',
    scope: 'apikey',
    scopeId: 'key_7pQ2mW9xL4kY8cR3tV6bN1sD',
    orgId: 'org_2xY8cR3tV6bN1sD7pQ2mW9xL',
    owner: 'org',
    period: 'monthly',
    timezone: 'UTC',
    limitKind: 'cost',
    limitValue: '12.500000000',
    thresholds: [
      { pct: 50, action: 'alert' },
      { pct: 100, action: 'block' },
    ],
    webhookUrl: 'https://hooks.example.com/tally',
    webhookSecretSealed: Buffer.from('sealed'),
    webhookPreviousSecretSealed: null,
    webhookPreviousSecretExpiresAt: null,
    webhookDisabledAt: null,
    counterEpoch: '0',
    updatedBy: 'key_admin',
    updatedOnBehalfOf: null,
    createdAt: new Date('2026-11-02T10:00:00Z'),
    updatedAt: new Date('2026-11-03T11:00:00Z'),
  } satisfies Budget);
  const window = { start: new Date('2026-11-01T00:00:00Z'), end: new Date('2026-12-01T00:00:00Z') };
  // At 7 of 12.5 after 19 d 8.5 h the limit would be reached after the window's end: forecast null.
  const evaluation = evaluateBudget(budget, { costNano: 7_000_000_000n, tokens: 1234n }, window, new Date('2026-11-20T08:30:00Z'));

  it('serialises exactly these fields, in this order', () => {
    const body = alertBody('alrt_9sD7pQ2mW9xL4kY8cR3tV6bN', new Date('2026-11-20T08:30:00Z'), evaluation, { pct: 50, action: 'alert' });
    expect(body).toBe(
      '{"id":"alrt_9sD7pQ2mW9xL4kY8cR3tV6bN","type":"budget.threshold.crossed","created_at":1795163400,"data":{"budget":{' +
        '"id":"bud_4kQ9mW2pL8xYc4RtV7bN1sDa","object":"llm.budget","scope":"apikey","scope_id":"key_7pQ2mW9xL4kY8cR3tV6bN1sD",' +
        '"org_id":"org_2xY8cR3tV6bN1sD7pQ2mW9xL","owner":"org","period":"monthly","timezone":"UTC","limit_kind":"cost","limit":12.5,' +
        '"thresholds":[{"pct":50,"action":"alert"},{"pct":100,"action":"block"}],"alert_webhook_url":"https://hooks.example.com/…",' +
        '"spend":{"window":"2026-11-01T00:00:00Z/2026-12-01T00:00:00Z","cost_spent_nano":"7000000000","cost_spent":7,"tokens_spent":"1234","pct":56,' +
        '"resets_at":1796083200,"forecast_exhaustion_at":null},"created_at":1793613600,"updated_at":1793703600},"threshold":{"pct":50,"action":"alert"},' +
        '"window":"2026-11-01T00:00:00Z/2026-12-01T00:00:00Z"}}',
    );
  });

  it('carries nothing of the budget beyond the contract (no secret, no audit fields)', () => {
    const body = alertBody('alrt_x', new Date(), evaluation, { pct: 50, action: 'alert' });
    expect(body).not.toMatch(/secret|sealed|updated_by|on_behalf|disabled/i);
  });

  it('writes the limit with every digit it was set with, as the API answers it', () => {
    const exact = Object.assign(new Budget(), budget, { limitValue: '123456789012345.123456789' });
    const body = alertBody('alrt_x', new Date(), evaluateBudget(exact, { costNano: 1n, tokens: 0n }, window, new Date('2026-11-20T08:30:00Z')), { pct: 50, action: 'alert' });
    expect(body).toContain('"limit":123456789012345.123456789,');
    expect(JSON.parse(body).data.budget.limit).toBe(123456789012345.123456789);
  });
});

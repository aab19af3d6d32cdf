import { budgetWindow } from '../src/budgets/budget-window';
import { blockingBudget, nowSeconds, reservationBody, reserve } from './helpers/reservations';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { ingestOk, record } from './helpers/usage';

/**
 * SPEC §4.1 with §4.2: an admission applies the budgets of the key's team and of the end user
 * (`user_id`) besides the key's and the org's, and every window is the budget's own, in its
 * `timezone`: admission, rebuild from PostgreSQL and `resets_at` / `retry_after`.
 */
describe('reservations: team and end-user budgets, budget time zones', () => {
  let t: TestApp;
  let ingestKey: string;
  beforeAll(async () => {
    t = await startTestApp({ PROCESS_ROLE: 'all', RESERVATION_RECONCILE_INTERVAL_MS: '3600000' });
    ingestKey = (await createSystemKey(t, 'ingest')).key;
  });
  afterAll(() => t.close());

  const check = async (apiKeyId: string, userId?: string) =>
    (await t.post('/api/v1/llm/budgets/check', { api_key_id: apiKeyId, ...(userId ? { user_id: userId } : {}) }, { key: ingestKey })).body as { allowed: boolean };

  it('a user budget blocks reservations for that user only; another user on the same key is granted', async () => {
    const acme = await seedOrg(t, `rsv-user-${Math.random().toString(36).slice(2, 8)}`);
    const user = await t.put(`/api/v1/llm/budgets/org/${acme.org.id}/users/alice`, blockingBudget('tokens', 1_000), { key: acme.orgAdmin.key });
    expect(user.status).toBe(200);

    const first = await reserve(t, ingestKey, reservationBody(acme.member.id, { user_id: 'alice', input_tokens: 400, max_output_tokens: 600 }));
    expect(first.body).toMatchObject({ status: 'held', granted_output_tokens: 600, budgets: [{ budget_id: user.body.id, scope: 'user', committed: '0', held: '1000' }] });
    const alice = await reserve(t, ingestKey, reservationBody(acme.member.id, { user_id: 'alice' }));
    expect(alice.body).toMatchObject({ status: 'denied', allowed: false, denied_by: [{ budget_id: user.body.id, scope: 'user', reason: 'budget_exhausted' }] });
    const bob = await reserve(t, ingestKey, reservationBody(acme.member.id, { user_id: 'bob' }));
    expect(bob.body).toMatchObject({ status: 'held', granted_output_tokens: 50, budgets: [] });
    const anonymous = await reserve(t, ingestKey, reservationBody(acme.member.id));
    expect(anonymous.body).toMatchObject({ status: 'held', budgets: [] });

    // Settled by alice's record: the user budget's committed spend is the record's, and the check agrees.
    await ingestOk(t, ingestKey, [record(acme.member.id, { user_id: 'alice', input_tokens: 400, output_tokens: 600, created_at: nowSeconds(), reservation_id: first.body.id })]);
    expect((await t.get(`/api/v1/llm/budgets/reservations/${first.body.id}`, { key: ingestKey })).body.status).toBe('settled');
    const after = await reserve(t, ingestKey, reservationBody(acme.member.id, { user_id: 'alice' }));
    expect(after.body).toMatchObject({ status: 'denied', budgets: [{ budget_id: user.body.id, committed: '1000', held: '0' }] });
    expect(await check(acme.member.id, 'alice')).toMatchObject({ allowed: false });
    expect(await check(acme.member.id, 'bob')).toMatchObject({ allowed: true });
  });

  it("a team budget caps the reservations of all the team's keys together, not other keys", async () => {
    const acme = await seedOrg(t, `rsv-team-${Math.random().toString(36).slice(2, 8)}`);
    const search1 = await acme.make('member', { team_id: 'search' });
    const search2 = await acme.make('member', { team_id: 'search' });
    const ads = await acme.make('member', { team_id: 'ads' });
    const team = await t.put(`/api/v1/llm/budgets/org/${acme.org.id}/teams/search`, blockingBudget('tokens', 1_000), { key: acme.orgAdmin.key });
    expect(team.status).toBe(200);
    // 300 tokens already spent by the team (on search2), read by the rebuild of the team's counters.
    await ingestOk(t, ingestKey, [record(search2.id, { input_tokens: 300, output_tokens: 0, created_at: nowSeconds() })]);

    const one = await reserve(t, ingestKey, reservationBody(search1.id, { input_tokens: 100, max_output_tokens: 400 }));
    expect(one.body).toMatchObject({ status: 'held', granted_output_tokens: 400, budgets: [{ budget_id: team.body.id, scope: 'team', committed: '300', held: '500' }] });
    const two = await reserve(t, ingestKey, reservationBody(search2.id, { input_tokens: 100, max_output_tokens: 400 }));
    expect(two.body).toMatchObject({ status: 'held', granted_output_tokens: 100, budgets: [{ budget_id: team.body.id, committed: '300', held: '700', remaining: '0' }] });
    const three = await reserve(t, ingestKey, reservationBody(search1.id));
    expect(three.body).toMatchObject({ status: 'denied', denied_by: [{ budget_id: team.body.id, scope: 'team', reason: 'budget_exhausted' }] });
    const other = await reserve(t, ingestKey, reservationBody(ads.id, { input_tokens: 100, max_output_tokens: 4_000 }));
    expect(other.body).toMatchObject({ status: 'held', granted_output_tokens: 4_000, budgets: [] });
  });

  it("reads a budget's window in its time zone: committed spend of the local day exactly, resets_at at local midnight", async () => {
    const zone = 'Asia/Kolkata'; // +05:30: the local day never matches the UTC day
    const acme = await seedOrg(t, `rsv-tz-${Math.random().toString(36).slice(2, 8)}`);
    const window = budgetWindow('daily', new Date(), zone);
    const start = window.start.getTime() / 1000;
    const end = window.end.getTime() / 1000;
    const budget = await t.put(`/api/v1/llm/budgets/apikey/${acme.member.id}`, blockingBudget('tokens', 1_000, { timezone: zone }));
    expect(budget.status).toBe(200);
    // One record on each side of local midnight: only the second is in the budget's window.
    await ingestOk(t, ingestKey, [
      record(acme.member.id, { id: `before-${start}`, input_tokens: 700, output_tokens: 0, created_at: start - 1 }),
      record(acme.member.id, { id: `at-${start}`, input_tokens: 900, output_tokens: 0, created_at: start }),
    ]);
    const granted = await reserve(t, ingestKey, reservationBody(acme.member.id, { input_tokens: 50, max_output_tokens: 500 }));
    expect(granted.body).toMatchObject({ status: 'held', granted_output_tokens: 50, budgets: [{ budget_id: budget.body.id, committed: '900', held: '100', resets_at: end }] });
    const denied = await reserve(t, ingestKey, reservationBody(acme.member.id));
    expect(denied.body).toMatchObject({ status: 'denied', denied_by: [{ budget_id: budget.body.id, reason: 'budget_exhausted', resets_at: end }] });
    const now = nowSeconds();
    expect(denied.body.retry_after).toBeGreaterThanOrEqual(end - now - 2);
    expect(denied.body.retry_after).toBeLessThanOrEqual(end - now + 2);
  });
});

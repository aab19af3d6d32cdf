import { Webhook } from 'standardwebhooks';
import { costBudget } from './helpers/budgets';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { ingestOk, record } from './helpers/usage';
import { startReceiver, WebhookReceiver } from './helpers/webhook-receiver';
import { waitFor } from './helpers/wait-for';

const NANO = 1_000_000_000n;

describe('team and end-user budgets (SPEC §4.2)', () => {
  let t: TestApp;
  let ingestKey: string;
  let hook: WebhookReceiver;

  beforeAll(async () => {
    t = await startTestApp({ ALERT_EVALUATION_INTERVAL_MS: '3600000' });
    ingestKey = (await createSystemKey(t, 'ingest')).key;
    hook = await startReceiver();
  });
  afterAll(async () => {
    await hook.close();
    await t.close();
  });

  /** One record now, of `units` major units, on the key (for the end user, when given). */
  const spend = (apiKeyId: string, units: bigint, userId?: string) =>
    ingestOk(t, ingestKey, [
      record(apiKeyId, { created_at: Math.floor(Date.now() / 1000), cost_nano: (units * NANO).toString(), input_tokens: 1, output_tokens: 1, ...(userId ? { user_id: userId } : {}) }),
    ]);
  const check = async (apiKeyId: string, userId?: string) => {
    const res = await t.post('/api/v1/llm/budgets/check', { api_key_id: apiKeyId, ...(userId !== undefined ? { user_id: userId } : {}) }, { key: ingestKey });
    expect(res.status).toBe(200);
    return res.body as { allowed: boolean; blocked_by: Array<{ budget_id: string; scope: string }> };
  };

  it('a team budget counts only the records of that team\'s keys, and blocks only them', async () => {
    const acme = await seedOrg(t, `teams-${Math.random()}`);
    const search1 = await acme.make('member', { team_id: 'search' });
    const search2 = await acme.make('member', { team_id: 'search' });
    const ads = await acme.make('member', { team_id: 'ads' });
    const noTeam = await acme.make('member');
    const other = await seedOrg(t, `teams-other-${Math.random()}`);
    const otherSearch = await other.make('member', { team_id: 'search' });
    await spend(search1.id, 2n);
    await spend(search2.id, 3n);
    await spend(ads.id, 7n);
    await spend(noTeam.id, 11n);
    await spend(otherSearch.id, 13n); // the same team id in another org

    const url = `/api/v1/llm/budgets/org/${acme.org.id}/teams/search`;
    const put = await t.put(url, costBudget(5, { period: 'monthly' }), { key: acme.orgAdmin.key });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ scope: 'team', scope_id: 'search', org_id: acme.org.id, spend: { cost_spent_nano: '5000000000', pct: 100 } });
    const got = await t.get(url, { key: acme.orgAdmin.key });
    expect(got.body.data.map((b: { id: string }) => b.id)).toEqual([put.body.id]);
    expect((await t.get(`/api/v1/llm/budgets/${put.body.id}`, { key: acme.orgAdmin.key })).body.spend.cost_spent_nano).toBe('5000000000');
    expect((await t.get(`/api/v1/llm/budgets?scope=team`, { key: acme.orgAdmin.key })).body.data.map((b: { id: string }) => b.id)).toEqual([put.body.id]);

    // At 100 % it blocks the team's keys, not the others (nor the same team id in another org).
    expect(await check(search1.id)).toMatchObject({ allowed: false, blocked_by: [{ budget_id: put.body.id, scope: 'team' }] });
    expect((await check(search2.id)).allowed).toBe(false);
    expect((await check(ads.id)).allowed).toBe(true);
    expect((await check(noTeam.id)).allowed).toBe(true);
    expect((await check(otherSearch.id)).allowed).toBe(true);
    const gate = await t.get('/api/v1/llm/budgets/authorize', { key: search2.key });
    expect(gate.status).toBe(429);
    expect(gate.headers.get('x-tally-budget-id')).toBe(put.body.id);
    expect((await t.get('/api/v1/llm/budgets/authorize', { key: ads.key })).status).toBe(200);

    // Ingest of the team's keys keeps its spend live; other keys do not move it.
    await spend(ads.id, 1n);
    await spend(search1.id, 1n);
    expect((await t.get(url, { key: acme.orgAdmin.key })).body.data[0].spend.cost_spent_nano).toBe('6000000000');

    // Delete beside it: the block lifts at once.
    const del = await t.delete(url, { key: acme.orgAdmin.key });
    expect(del.body).toEqual({ id: put.body.id, object: 'llm.budget.deleted', deleted: true });
    expect((await check(search1.id)).allowed).toBe(true);
    expect((await t.delete(url, { key: acme.orgAdmin.key })).status).toBe(404);
  });

  it('a user budget counts that user across the org\'s keys, and blocks the check and the gate for that user only', async () => {
    const acme = await seedOrg(t, `users-${Math.random()}`);
    const keyA = await acme.make('member');
    const keyB = await acme.make('member', { team_id: 'ads' });
    const other = await seedOrg(t, `users-other-${Math.random()}`);
    await spend(keyA.id, 2n, 'alice');
    await spend(keyB.id, 3n, 'alice');
    await spend(keyA.id, 17n, 'bob');
    await spend(keyA.id, 19n);
    await spend(other.member.id, 23n, 'alice'); // the same user id in another org

    const userUrl = (id: string) => `/api/v1/llm/budgets/org/${acme.org.id}/users/${encodeURIComponent(id)}`;
    const put = await t.put(userUrl('alice'), costBudget(10, { period: 'monthly', webhook_url: hook.url, timezone: 'Asia/Kolkata' }), { key: acme.orgAdmin.key });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ scope: 'user', scope_id: 'alice', timezone: 'Asia/Kolkata', spend: { cost_spent_nano: '5000000000', pct: 50 } });
    const secret = put.body.webhook_secret as string;
    expect((await check(keyA.id, 'alice')).allowed).toBe(true);

    // Alice reaches 100 % through key B: blocked on both keys, but only for her.
    await spend(keyB.id, 5n, 'alice');
    const blocked = await check(keyA.id, 'alice');
    expect(blocked).toMatchObject({ allowed: false, blocked_by: [{ budget_id: put.body.id, scope: 'user' }] });
    expect((await check(keyB.id, 'alice')).allowed).toBe(false);
    expect((await check(keyA.id, 'bob')).allowed).toBe(true);
    expect((await check(keyA.id)).allowed).toBe(true);
    expect((await check(other.member.id, 'alice')).allowed).toBe(true);
    const gate = await t.get('/api/v1/llm/budgets/authorize', { key: keyA.key, headers: { 'x-on-behalf-of': 'alice' } });
    expect(gate.status).toBe(429);
    expect(gate.headers.get('x-tally-budget-id')).toBe(put.body.id);
    expect((await t.get('/api/v1/llm/budgets/authorize', { key: keyA.key, headers: { 'x-on-behalf-of': 'bob' } })).status).toBe(200);
    expect((await t.get('/api/v1/llm/budgets/authorize', { key: keyA.key })).status).toBe(200);

    // Alerts like any budget: signed, with scope user and the user id.
    await waitFor(() => hook.requests.filter((r) => JSON.parse(r.body).data.budget.id === put.body.id).length === 2, 'the user budget\'s alerts');
    const [alert] = hook.requests.filter((r) => JSON.parse(r.body).data.budget.id === put.body.id);
    const payload = new Webhook(secret).verify(alert.body, alert.headers) as any;
    expect(payload.data.budget).toMatchObject({ scope: 'user', scope_id: 'alice', org_id: acme.org.id, timezone: 'Asia/Kolkata' });
    expect(payload.data.window).toMatch(/\+05:30\/.*\+05:30$/);

    // A user id with URL-special characters round-trips.
    const odd = 'ann@example.com/x y';
    await spend(keyA.id, 4n, odd);
    const oddPut = await t.put(userUrl(odd), costBudget(1, { period: 'monthly' }), { key: acme.orgAdmin.key });
    expect(oddPut.body).toMatchObject({ scope: 'user', scope_id: odd, spend: { cost_spent_nano: '4000000000' } });
    expect((await check(keyB.id, odd)).allowed).toBe(false);
  });

  it('one batch over several orgs refreshes the org, key, team and user budgets of each before it answers', async () => {
    const [a, b, c, d] = await Promise.all([0, 1, 2, 3].map((i) => seedOrg(t, `mixed-${i}-${Math.random()}`)));
    const bSearch = await b.make('member', { team_id: 'search' });
    const bAds = await b.make('member', { team_id: 'ads' });
    const puts = await Promise.all([
      t.put(`/api/v1/llm/budgets/org/${a.org.id}`, costBudget(5, { period: 'monthly' }), { key: a.orgAdmin.key }),
      t.put(`/api/v1/llm/budgets/org/${b.org.id}/teams/search`, costBudget(5, { period: 'monthly' }), { key: b.orgAdmin.key }),
      t.put(`/api/v1/llm/budgets/apikey/${bAds.id}`, costBudget(5, { period: 'weekly' }), { key: b.orgAdmin.key }),
      t.put(`/api/v1/llm/budgets/org/${c.org.id}/users/carol`, costBudget(5, { period: 'daily' }), { key: c.orgAdmin.key }),
      // The same team and user ids in an org the batch does not reach: never blocked by it.
      t.put(`/api/v1/llm/budgets/org/${d.org.id}/users/carol`, costBudget(5, { period: 'daily' }), { key: d.orgAdmin.key }),
    ]);
    expect(puts.map((p) => p.status)).toEqual([200, 200, 200, 200, 200]);
    const now = Math.floor(Date.now() / 1000);
    const at = (apiKeyId: string, units: bigint, userId?: string) =>
      record(apiKeyId, { created_at: now, cost_nano: (units * NANO).toString(), input_tokens: 1, output_tokens: 1, ...(userId ? { user_id: userId } : {}) });
    await ingestOk(t, ingestKey, [at(a.member.id, 6n), at(bSearch.id, 6n), at(bAds.id, 4n), at(c.member.id, 6n, 'carol'), at(c.member.id, 9n, 'dave')]);

    // Right after the one answer, in every org the batch reached:
    expect(await check(a.member.id)).toMatchObject({ allowed: false, blocked_by: [{ budget_id: puts[0].body.id, scope: 'org' }] });
    expect(await check(bSearch.id)).toMatchObject({ allowed: false, blocked_by: [{ budget_id: puts[1].body.id, scope: 'team' }] });
    expect((await check(bAds.id)).allowed).toBe(true); // 80 % of its key budget
    expect(await check(c.member.id, 'carol')).toMatchObject({ allowed: false, blocked_by: [{ budget_id: puts[3].body.id, scope: 'user' }] });
    expect((await check(c.member.id, 'dave')).allowed).toBe(true);
    expect((await check(d.member.id, 'carol')).allowed).toBe(true);
    // The next batch crosses the key budget: blocked at once too.
    await ingestOk(t, ingestKey, [at(bAds.id, 1n), at(d.member.id, 1n, 'carol')]);
    expect(await check(bAds.id)).toMatchObject({ allowed: false, blocked_by: [{ budget_id: puts[2].body.id, scope: 'apikey' }] });
    expect((await check(d.member.id, 'carol')).allowed).toBe(true);
  });

  it('follows the org budget owner rules', async () => {
    const acme = await seedOrg(t, `owners-${Math.random()}`);
    const globex = await seedOrg(t, `owners-other-${Math.random()}`);
    const team = `/api/v1/llm/budgets/org/${acme.org.id}/teams/search`;
    const user = `/api/v1/llm/budgets/org/${acme.org.id}/users/alice`;
    for (const url of [team, user]) {
      expect((await t.put(url, costBudget(1), { key: acme.member.key })).status).toBe(403);
      expect((await t.put(url, costBudget(1), { key: globex.orgAdmin.key })).status).toBe(404);
      expect((await t.put(url, costBudget(1, { owner: 'cluster' }), { key: acme.orgAdmin.key })).status).toBe(403);
      const cluster = await t.put(url, costBudget(1, { owner: 'cluster' }));
      expect(cluster.status).toBe(200);
      const own = await t.put(url, costBudget(2), { key: acme.orgAdmin.key });
      expect(own.status).toBe(200);
      expect((await t.get(url, { key: acme.orgAdmin.key })).body.data.map((b: { owner: string }) => b.owner)).toEqual(['cluster', 'org']);
      expect((await t.get(url, { key: acme.member.key })).status).toBe(404);
      expect((await t.get(url, { key: globex.orgAdmin.key })).status).toBe(404);
      expect((await t.delete(`${url}?owner=cluster`, { key: acme.orgAdmin.key })).status).toBe(403);
      expect((await t.delete(url, { key: globex.orgAdmin.key })).status).toBe(404);
      expect((await t.delete(`${url}?owner=cluster`)).status).toBe(200);
      expect((await t.delete(url, { key: acme.orgAdmin.key })).status).toBe(200);
    }
    const bad = await t.put(`/api/v1/llm/budgets/org/${acme.org.id}/users/${encodeURIComponent('*')}`, costBudget(1), { key: acme.orgAdmin.key });
    expect(bad.status).toBe(400);
    expect(bad.body.error.param).toBe('userId');
  });
});

import { BlockStateStore } from '../src/budgets/budget-block-store';
import { budgetWindow } from '../src/budgets/budget-window';
import { costBudget } from './helpers/budgets';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { ingestOk, record } from './helpers/usage';

const seedBody = { period: 'weekly', limit_kind: 'tokens', limit: 3281.35, thresholds: [{ pct: 50, action: 'alert' }] };

describe('budgets (SPEC §4)', () => {
  let t: TestApp;
  let acme: Awaited<ReturnType<typeof seedOrg>>;
  let globex: Awaited<ReturnType<typeof seedOrg>>;
  let ingestKey: string;
  /** Ingests records with no tokens or cost unless given. */
  const ingest = (_t: TestApp, key: string, rows: Array<{ api_key_id: string } & Record<string, unknown>>) =>
    ingestOk(t, key, rows.map(({ api_key_id, ...rest }) => record(api_key_id, { input_tokens: 0, output_tokens: 0, ...rest })));

  beforeAll(async () => {
    t = await startTestApp();
    acme = await seedOrg(t, 'Acme');
    globex = await seedOrg(t, 'Globex');
    ingestKey = (await createSystemKey(t, 'ingest')).key;
  });
  afterAll(() => t.close());

  it('accepts the seed\'s body and answers with every field of the seed, in the seed\'s types', async () => {
    const key = await acme.make('member');
    const res = await t.put(`/api/v1/llm/budgets/apikey/${key.id}`, seedBody, { key: acme.orgAdmin.key });
    expect(res.status).toBe(200);
    const now = new Date();
    const window = budgetWindow('weekly', now);
    expect(res.body).toEqual({
      id: expect.stringMatching(/^bud_[A-Za-z0-9]{24}$/),
      object: 'llm.budget',
      scope: 'apikey',
      scope_id: key.id,
      org_id: acme.org.id,
      owner: 'org',
      period: 'weekly',
      timezone: 'UTC',
      limit_kind: 'tokens',
      limit: 3281.35,
      thresholds: [{ pct: 50, action: 'alert' }],
      alert_webhook_url: null,
      spend: {
        window: `${window.start.toISOString().replace('.000Z', 'Z')}/${window.end.toISOString().replace('.000Z', 'Z')}`,
        cost_spent_nano: '0',
        cost_spent: 0,
        tokens_spent: '0',
        pct: 0,
        resets_at: window.end.getTime() / 1000,
        forecast_exhaustion_at: null,
      },
      created_at: expect.any(Number),
      updated_at: expect.any(Number),
    });
    // PUT replaces: one budget per (scope, scope_id, owner), same id.
    const again = await t.put(`/api/v1/llm/budgets/apikey/${key.id}`, { ...seedBody, limit: 5000 }, { key: acme.orgAdmin.key });
    expect(again.body).toMatchObject({ id: res.body.id, limit: 5000 });
    const list = await t.get(`/api/v1/llm/budgets/apikey/${key.id}`, { key: acme.orgAdmin.key });
    expect(list.body.data.map((b: { id: string }) => b.id)).toEqual([res.body.id]);
  });

  describe('validation: a clear 400 naming the field', () => {
    it.each([
      ['empty thresholds', { thresholds: [] }, 'thresholds'],
      ['21 thresholds', { thresholds: Array.from({ length: 21 }, (_, i) => ({ pct: i + 1 })) }, 'thresholds'],
      ['a duplicate pct', { thresholds: [{ pct: 50 }, { pct: 50, action: 'block' }] }, 'thresholds'],
      ['pct 0', { thresholds: [{ pct: 0 }] }, 'thresholds[0].pct'],
      ['a negative pct', { thresholds: [{ pct: -5 }] }, 'thresholds[0].pct'],
      ['pct over 1,000,000,000', { thresholds: [{ pct: 1000000000.5 }] }, 'thresholds[0].pct'],
      ['an unknown action', { thresholds: [{ pct: 50, action: 'panic' }] }, 'thresholds[0].action'],
      ['a bad period', { period: 'yearly' }, 'period'],
      ['a bad limit_kind', { limit_kind: 'dollars' }, 'limit_kind'],
      ['limit 0', { limit: 0 }, 'limit'],
      ['a negative limit', { limit: -1 }, 'limit'],
      ['a string limit', { limit: '10' }, 'limit'],
      ['a malformed webhook URL', { webhook_url: 'not a url' }, 'webhook_url'],
      ['a non-http webhook URL', { webhook_url: 'ftp://example.com/x' }, 'webhook_url'],
      ['an empty webhook secret', { webhook_url: 'http://127.0.0.1:9/x', webhook_secret: '' }, 'webhook_secret'],
      ['a whsec_ secret with nothing after the prefix', { webhook_url: 'http://127.0.0.1:9/x', webhook_secret: 'whsec_' }, 'webhook_secret'],
      ['a whsec_ secret that is not base64', { webhook_url: 'http://127.0.0.1:9/x', webhook_secret: 'whsec_!!notbase64' }, 'webhook_secret'],
      ['a whsec_ secret without its padding', { webhook_url: 'http://127.0.0.1:9/x', webhook_secret: 'whsec_YQ' }, 'webhook_secret'],
      ['an unknown field', { colour: 'red' }, 'colour'],
      ['a bad owner', { owner: 'me' }, 'owner'],
    ])('%s', async (_name, patch, param) => {
      const res = await t.put(`/api/v1/llm/budgets/org/${acme.org.id}`, { ...costBudget(10), ...patch });
      expect(res.status).toBe(400);
      expect(res.body.error.type).toBe('invalid_request_error');
      expect(res.body.error.details.map((d: { param: string }) => d.param)).toContain(param);
      const list = await t.get(`/api/v1/llm/budgets/org/${acme.org.id}`);
      expect(list.body.data).toEqual([]); // nothing written
    });

    it('refuses thresholds that hold a list instead of an object (a 500 before), on every budget route', async () => {
      const key = await acme.make('member');
      const routes = [`org/${acme.org.id}`, `apikey/${key.id}`, `org/${acme.org.id}/teams/blue`, `org/${acme.org.id}/users/ann`];
      for (const thresholds of [[[]], [[{ pct: 50, action: 'block' }]], [{ pct: 50, action: 'block' }, []]]) {
        for (const route of routes) {
          const res = await t.put(`/api/v1/llm/budgets/${route}`, { period: 'weekly', limit_kind: 'tokens', limit: 3281.35, thresholds });
          expect([route, res.status, res.body.error.param]).toEqual([route, 400, 'thresholds']);
        }
      }
      expect((await t.get(`/api/v1/llm/budgets/apikey/${key.id}`)).body.data).toEqual([]);
    });

    it('names every bad field at once', async () => {
      const res = await t.put(`/api/v1/llm/budgets/org/${acme.org.id}`, { period: 'x', limit_kind: 'y', limit: 0, thresholds: [] });
      expect(res.body.error.details.map((d: { param: string }) => d.param).sort()).toEqual(['limit', 'limit_kind', 'period', 'thresholds']);
    });
  });

  describe('ownership', () => {
    let clusterBudgetId: string;
    beforeAll(async () => {
      const res = await t.put(`/api/v1/llm/budgets/org/${globex.org.id}`, costBudget(100, { owner: 'cluster' }));
      expect(res.status).toBe(200);
      clusterBudgetId = res.body.id;
    });

    it('only cluster admins write owner: cluster budgets; org admins read them', async () => {
      const write = await t.put(`/api/v1/llm/budgets/org/${globex.org.id}`, costBudget(5, { owner: 'cluster' }), { key: globex.orgAdmin.key });
      expect(write.status).toBe(403);
      const read = await t.get(`/api/v1/llm/budgets/${clusterBudgetId}`, { key: globex.orgAdmin.key });
      expect(read.status).toBe(200);
      expect(read.body).toMatchObject({ owner: 'cluster', limit: 100 });
      expect((await t.delete(`/api/v1/llm/budgets/${clusterBudgetId}`, { key: globex.orgAdmin.key })).status).toBe(403);
      const list = await t.get('/api/v1/llm/budgets?owner=cluster', { key: globex.orgAdmin.key });
      expect(list.body.data.map((b: { id: string }) => b.id)).toEqual([clusterBudgetId]);
    });

    it('an org admin sets its org\'s own budget beside the cluster one', async () => {
      const own = await t.put(`/api/v1/llm/budgets/org/${globex.org.id}`, costBudget(50), { key: globex.orgAdmin.key });
      expect(own.status).toBe(200);
      expect(own.body.owner).toBe('org');
      const both = await t.get(`/api/v1/llm/budgets/org/${globex.org.id}`, { key: globex.orgAdmin.key });
      expect(both.body.data.map((b: { owner: string }) => b.owner).sort()).toEqual(['cluster', 'org']);
      const deleted = await t.delete(`/api/v1/llm/budgets/${own.body.id}`, { key: globex.orgAdmin.key });
      expect(deleted.body).toEqual({ id: own.body.id, object: 'llm.budget.deleted', deleted: true });
      expect((await t.get(`/api/v1/llm/budgets/${own.body.id}`)).status).toBe(404);
    });

    it('members read their own key\'s budgets only and write none', async () => {
      const mine = await t.put(`/api/v1/llm/budgets/apikey/${globex.member.id}`, costBudget(1), { key: globex.orgAdmin.key });
      expect((await t.get(`/api/v1/llm/budgets/${mine.body.id}`, { key: globex.member.key })).status).toBe(200);
      const list = await t.get('/api/v1/llm/budgets', { key: globex.member.key });
      expect(list.body.data.map((b: { id: string }) => b.id)).toEqual([mine.body.id]);
      expect((await t.get(`/api/v1/llm/budgets/${clusterBudgetId}`, { key: globex.member.key })).status).toBe(404);
      expect((await t.get(`/api/v1/llm/budgets/org/${globex.org.id}`, { key: globex.member.key })).status).toBe(404);
      expect((await t.put(`/api/v1/llm/budgets/apikey/${globex.member.id}`, costBudget(2), { key: globex.member.key })).status).toBe(403);
      expect((await t.delete(`/api/v1/llm/budgets/${mine.body.id}`, { key: globex.member.key })).status).toBe(403);
    });

    it('other tenants\' budgets, orgs and keys are 404', async () => {
      expect((await t.get(`/api/v1/llm/budgets/${clusterBudgetId}`, { key: acme.orgAdmin.key })).status).toBe(404);
      expect((await t.delete(`/api/v1/llm/budgets/${clusterBudgetId}`, { key: acme.orgAdmin.key })).status).toBe(404);
      expect((await t.put(`/api/v1/llm/budgets/org/${globex.org.id}`, costBudget(5), { key: acme.orgAdmin.key })).status).toBe(404);
      expect((await t.put(`/api/v1/llm/budgets/apikey/${globex.member.id}`, costBudget(5), { key: acme.orgAdmin.key })).status).toBe(404);
      expect((await t.get(`/api/v1/llm/budgets/apikey/${globex.member.id}`, { key: acme.orgAdmin.key })).status).toBe(404);
      const list = await t.get('/api/v1/llm/budgets', { key: acme.orgAdmin.key });
      expect(list.body.data.every((b: { org_id: string }) => b.org_id === acme.org.id)).toBe(true);
      expect((await t.get(`/api/v1/llm/budgets?org_id=${globex.org.id}`, { key: acme.orgAdmin.key })).status).toBe(403);
    });

    it('the ingest role reads no budgets', async () => {
      expect((await t.get('/api/v1/llm/budgets', { key: ingestKey })).status).toBe(403);
    });
  });

  describe('live spend at window edges', () => {
    it('counts the first second of the window and not the last second of the previous one; org budgets count every key', async () => {
      const org = await seedOrg(t, 'Edge Co');
      const k1 = await org.make('member');
      const k2 = await org.make('member');
      const window = budgetWindow('daily', new Date());
      const start = window.start.getTime() / 1000;
      await ingest(t, ingestKey, [
        { api_key_id: k1.id, created_at: start - 1, input_tokens: 1000, output_tokens: 1000, cost_nano: '9000000000' },
        { api_key_id: k1.id, created_at: start, input_tokens: 100, output_tokens: 23, cost_nano: '1250000001' },
        { api_key_id: k2.id, created_at: start, input_tokens: 7, output_tokens: 0, cost_nano: 500000000 },
      ]);
      const keyBudget = await t.put(`/api/v1/llm/budgets/apikey/${k1.id}`, costBudget(2.5));
      expect(keyBudget.body.spend).toMatchObject({ cost_spent_nano: '1250000001', cost_spent: 1.250000001, tokens_spent: '123', pct: 50 }); // 50.00000004 %, to 6 decimals
      const orgBudget = await t.put(`/api/v1/llm/budgets/org/${org.org.id}`, { ...costBudget(7), limit_kind: 'tokens', limit: 260 });
      expect(orgBudget.body.spend).toMatchObject({ cost_spent_nano: '1750000001', tokens_spent: '130', pct: 50 });
    });

    it('counts the last second of the current window (weekly)', async () => {
      const org = await seedOrg(t, 'Weekly Co');
      const key = await org.make('member');
      const window = budgetWindow('weekly', new Date());
      const lastSecond = window.end.getTime() / 1000 - 1;
      if (lastSecond * 1000 > Date.now() + 86_400_000) {
        // Records more than a day ahead are refused at ingest; test with today's last second then.
        const today = budgetWindow('daily', new Date());
        await ingest(t, ingestKey, [{ api_key_id: key.id, created_at: today.end.getTime() / 1000 - 1, output_tokens: 40 }]);
      } else {
        await ingest(t, ingestKey, [{ api_key_id: key.id, created_at: lastSecond, output_tokens: 40 }]);
      }
      const res = await t.put(`/api/v1/llm/budgets/apikey/${key.id}`, { ...seedBody, limit: 80 });
      expect(res.body.spend).toMatchObject({ tokens_spent: '40', pct: 50 });
    });
    it('evaluates a list of budgets of several keys and windows, each against its own spend', async () => {
      const org = await seedOrg(t, 'Listy');
      const k1 = await org.make('member');
      const k2 = await org.make('member');
      const now = Math.floor(Date.now() / 1000);
      await ingest(t, ingestKey, [
        { api_key_id: k1.id, created_at: now, output_tokens: 10 },
        { api_key_id: k2.id, created_at: now, output_tokens: 20 },
      ]);
      await t.put(`/api/v1/llm/budgets/apikey/${k1.id}`, { ...seedBody, period: 'daily', limit: 100 });
      await t.put(`/api/v1/llm/budgets/apikey/${k2.id}`, { ...seedBody, period: 'weekly', limit: 100 });
      await t.put(`/api/v1/llm/budgets/apikey/${k2.id}`, { ...seedBody, period: 'daily', limit: 100, owner: 'cluster' });
      await t.put(`/api/v1/llm/budgets/org/${org.org.id}`, { ...seedBody, period: 'monthly', limit: 100 });
      const list = await t.get(`/api/v1/llm/budgets?org_id=${org.org.id}`);
      const name = (id: string) => ({ [org.org.id]: 'org', [k1.id]: 'k1', [k2.id]: 'k2' })[id];
      const spent = Object.fromEntries(
        list.body.data.map((b: { scope_id: string; owner: string; period: string; spend: { tokens_spent: string } }) => [
          `${name(b.scope_id)}/${b.owner}/${b.period}`,
          b.spend.tokens_spent,
        ]),
      );
      expect(spent).toEqual({ 'k1/org/daily': '10', 'k2/org/weekly': '20', 'k2/cluster/daily': '20', 'org/org/monthly': '30' });
    });
  });

  describe('enforcement check', () => {
    it('flips to allowed: false once ingest crosses a block threshold, lists every blocking budget, and back when the limit is raised', async () => {
      const org = await seedOrg(t, 'Blocky');
      const key = await org.make('member');
      const other = await org.make('member');
      const keyBudget = await t.put(`/api/v1/llm/budgets/apikey/${key.id}`, costBudget(1));
      const orgBudget = await t.put(`/api/v1/llm/budgets/org/${org.org.id}`, costBudget(1.5, { owner: 'cluster' }));
      const check = (id: string) => t.post('/api/v1/llm/budgets/check', { api_key_id: id }, { key: ingestKey });
      expect((await check(key.id)).body).toEqual({ allowed: true, blocked_by: [] });

      const now = Math.floor(Date.now() / 1000);
      await ingest(t, ingestKey, [{ api_key_id: key.id, created_at: now, cost_nano: '999999999' }]);
      expect((await check(key.id)).body.allowed).toBe(true); // 99.9999999 %: not yet
      await ingest(t, ingestKey, [{ api_key_id: key.id, created_at: now, cost_nano: '1' }]);
      const resetsAt = budgetWindow('daily', new Date()).end.getTime() / 1000;
      expect((await check(key.id)).body).toEqual({
        allowed: false,
        blocked_by: [{ budget_id: keyBudget.body.id, scope: 'apikey', owner: 'org', pct: 100, resets_at: resetsAt }],
      });
      expect((await check(other.id)).body.allowed).toBe(true); // another key of the org

      await ingest(t, ingestKey, [{ api_key_id: other.id, created_at: now, cost_nano: '600000000' }]);
      const both = (await check(key.id)).body;
      expect(both.allowed).toBe(false);
      expect(both.blocked_by.map((b: { budget_id: string }) => b.budget_id).sort()).toEqual([keyBudget.body.id, orgBudget.body.id].sort());
      expect((await check(other.id)).body.blocked_by).toEqual([
        { budget_id: orgBudget.body.id, scope: 'org', owner: 'cluster', pct: 106.666666, resets_at: resetsAt },
      ]);

      // Raising the limits unblocks at once.
      await t.put(`/api/v1/llm/budgets/apikey/${key.id}`, costBudget(10));
      await t.put(`/api/v1/llm/budgets/org/${org.org.id}`, costBudget(10, { owner: 'cluster' }));
      expect((await check(key.id)).body).toEqual({ allowed: true, blocked_by: [] });
      expect((await check(other.id)).body).toEqual({ allowed: true, blocked_by: [] });

      // A block lifts at the start of the next window (the state carries resets_at).
      await t.put(`/api/v1/llm/budgets/apikey/${key.id}`, costBudget(1));
      expect((await check(key.id)).body.allowed).toBe(false);
      const state = t.app.get(BlockStateStore);
      const scopes = [{ scope: 'apikey' as const, scopeId: key.id }, { scope: 'org' as const, scopeId: org.org.id }];
      expect((await state.blocksOf(scopes, resetsAt * 1000 - 1)).blocks).toHaveLength(1);
      expect((await state.blocksOf(scopes, resetsAt * 1000)).blocks).toEqual([]);

      // Deleting the budget lifts its block.
      await t.delete(`/api/v1/llm/budgets/${keyBudget.body.id}`);
      expect((await check(key.id)).body.allowed).toBe(true);
    });

    it('answers from memory, and another instance sharing Redis sees a new block at once', async () => {
      const other = await startTestApp({ REDIS_PREFIX: t.config.redisPrefix }, { database: t.db });
      try {
        const org = await seedOrg(t, 'Twice');
        const key = await org.make('member');
        await t.put(`/api/v1/llm/budgets/apikey/${key.id}`, costBudget(1));
        const check = (app: TestApp) => app.post('/api/v1/llm/budgets/check', { api_key_id: key.id }, { key: app.adminKey });
        expect((await check(other)).body.allowed).toBe(true); // now in the other instance's memory
        await ingest(t, ingestKey, [{ api_key_id: key.id, created_at: Math.floor(Date.now() / 1000), cost_nano: '1000000000' }]);
        expect((await check(other)).body.blocked_by).toHaveLength(1);
        await t.put(`/api/v1/llm/budgets/apikey/${key.id}`, costBudget(5)); // raised through this instance
        expect((await check(other)).body).toEqual({ allowed: true, blocked_by: [] });
      } finally {
        await other.close();
      }
    });

    it('is for ingest and cluster-admin keys; an unknown key is a 404', async () => {
      expect((await t.post('/api/v1/llm/budgets/check', { api_key_id: acme.member.id }, { key: acme.orgAdmin.key })).status).toBe(403);
      expect((await t.post('/api/v1/llm/budgets/check', { api_key_id: acme.member.id })).status).toBe(200);
      expect((await t.post('/api/v1/llm/budgets/check', { api_key_id: 'key_nope' }, { key: ingestKey })).status).toBe(404);
      expect((await t.post('/api/v1/llm/budgets/check', {}, { key: ingestKey })).body.error.param).toBe('api_key_id');
    });
  });

  describe('webhook settings', () => {
    it('generates a whsec_ secret once, stores it sealed, and never returns it again', async () => {
      const key = await acme.make('member');
      const res = await t.put(`/api/v1/llm/budgets/apikey/${key.id}`, costBudget(1, { webhook_url: 'http://127.0.0.1:9/hook' }));
      expect(res.status).toBe(200);
      expect(res.body.alert_webhook_url).toBe('http://127.0.0.1:9/hook');
      expect(res.body.webhook_secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
      const read = await t.get(`/api/v1/llm/budgets/${res.body.id}`);
      expect(read.body).not.toHaveProperty('webhook_secret');
      const [row] = await t.dataSource.query('SELECT webhook_secret_sealed FROM budgets WHERE id = $1', [res.body.id]);
      expect(row.webhook_secret_sealed.toString('latin1')).not.toContain(res.body.webhook_secret.slice(6));
      // Omitting the secret later keeps it (no new one shown); null rotates it.
      const kept = await t.put(`/api/v1/llm/budgets/apikey/${key.id}`, costBudget(2, { webhook_url: 'http://127.0.0.1:9/hook2' }));
      expect(kept.body).not.toHaveProperty('webhook_secret');
      const rotated = await t.put(`/api/v1/llm/budgets/apikey/${key.id}`, costBudget(2, { webhook_url: 'http://127.0.0.1:9/hook2', webhook_secret: null }));
      expect(rotated.body.webhook_secret).toMatch(/^whsec_/);
      expect(rotated.body.webhook_secret).not.toBe(res.body.webhook_secret);
      const given = await t.put(`/api/v1/llm/budgets/apikey/${key.id}`, costBudget(2, { webhook_url: 'http://127.0.0.1:9/h', webhook_secret: 'my-own-secret' }));
      expect(given.body).not.toHaveProperty('webhook_secret');
      expect(given.text).not.toContain('my-own-secret');
      expect(t.logs.join('')).not.toContain('my-own-secret');
      expect(t.logs.join('')).not.toContain(res.body.webhook_secret);
    });

    it('refuses private targets unless WEBHOOK_ALLOW_PRIVATE_TARGETS=true', async () => {
      const strict = await startTestApp({ WEBHOOK_ALLOW_PRIVATE_TARGETS: 'false' });
      try {
        const org = await seedOrg(strict, 'Strict');
        for (const url of ['http://127.0.0.1:8080/x', 'http://localhost/x', 'http://10.1.2.3/x', 'http://169.254.169.254/latest', 'http://[::1]/x', 'http://192.168.0.10/x']) {
          const res = await strict.put(`/api/v1/llm/budgets/org/${org.org.id}`, costBudget(1, { webhook_url: url }));
          expect({ url, status: res.status, param: res.body.error?.param }).toEqual({ url, status: 400, param: 'webhook_url' });
        }
        const ok = await strict.put(`/api/v1/llm/budgets/org/${org.org.id}`, costBudget(1, { webhook_url: 'http://8.8.8.8/hook' }));
        expect(ok.status).toBe(200);
      } finally {
        await strict.close();
      }
    });
  });
});

import { gzipSync } from 'node:zlib';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';

/** The forward-auth gate called directly, as Envoy's ext_authz and Traefik's ForwardAuth do. */
describe('forward-auth budget gate (direct)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t.close());

  it('allows any method for a valid key of any role, with the key and org in headers and body', async () => {
    const acme = await seedOrg(t, 'Gate Acme');
    for (const method of ['GET', 'POST', 'PUT', 'DELETE', 'PATCH']) {
      const res = await t.request(method, '/api/v1/llm/budgets/authorize', undefined, { key: acme.member.key });
      expect([method, res.status]).toEqual([method, 200]);
      expect(res.headers.get('x-tally-api-key-id')).toBe(acme.member.id);
      expect(res.headers.get('x-tally-org-id')).toBe(acme.org.id);
      expect(res.body).toEqual({ object: 'llm.budget.authorization', allowed: true, api_key_id: acme.member.id, org_id: acme.org.id });
    }
    const head = await fetch(`${t.baseUrl}/api/v1/llm/budgets/authorize`, { method: 'HEAD', headers: { authorization: `Bearer ${acme.orgAdmin.key}` } });
    expect(head.status).toBe(200);
    expect(head.headers.get('x-tally-api-key-id')).toBe(acme.orgAdmin.id);
    const ingest = await createSystemKey(t, 'ingest');
    expect((await t.get('/api/v1/llm/budgets/authorize', { key: ingest.key })).status).toBe(200);
  });

  it('answers 401 for a missing or unknown key, 400 for bad parameters, 401 for a malformed X-On-Behalf-Of (a proxy passes only 2xx, 401 and 403 on)', async () => {
    const acme = await seedOrg(t, 'Gate Errors');
    const missing = await t.get('/api/v1/llm/budgets/authorize', { key: null });
    expect(missing.status).toBe(401);
    expect(missing.body.error.code).toBe('missing_api_key');
    expect(missing.headers.get('www-authenticate')).toBe('Bearer');
    expect((await t.get('/api/v1/llm/budgets/authorize', { key: `mk-${'y'.repeat(40)}` })).body.error.code).toBe('invalid_api_key');
    const bad = await t.get('/api/v1/llm/budgets/authorize?deny_status=500', { key: acme.member.key });
    expect([bad.status, bad.body.error.param]).toEqual([400, 'deny_status']);
    const unknown = await t.get('/api/v1/llm/budgets/authorize?foo=1', { key: acme.member.key });
    expect([unknown.status, unknown.body.error.param]).toEqual([400, 'foo']);
    const obo = await t.get('/api/v1/llm/budgets/authorize', { key: acme.member.key, headers: { 'x-on-behalf-of': '*' } });
    expect([obo.status, obo.body.error.code]).toEqual([401, 'invalid_on_behalf_of']);
    const long = await t.get('/api/v1/llm/budgets/authorize', { key: acme.member.key, headers: { 'x-on-behalf-of': 'u'.repeat(200) } });
    expect([long.status, long.body.error.code]).toEqual([401, 'invalid_on_behalf_of']);
    // Elsewhere it stays a 400 (a client error the client itself sees).
    expect((await t.post('/api/v1/llm/budgets/check', { api_key_id: acme.member.id }, { key: acme.orgAdmin.key, headers: { 'x-on-behalf-of': '*' } })).status).toBe(400);
    expect((await t.get('/api/v1/llm/budgets/authorize', { key: acme.member.key, headers: { 'x-on-behalf-of': 'user_1' } })).status).toBe(200);
  });

  it('denies a blocked key with 429 (or deny_status), Retry-After to the window reset and the budget named; Envoy\'s prefixed form too', async () => {
    const acme = await seedOrg(t, 'Gate Blocked');
    const ingest = await createSystemKey(t, 'ingest');
    const keyBudget = await t.put(`/api/v1/llm/budgets/apikey/${acme.member.id}`, {
      period: 'daily',
      limit_kind: 'tokens',
      limit: 100,
      thresholds: [{ pct: 100, action: 'block' }],
    });
    const orgBudget = await t.put(`/api/v1/llm/budgets/org/${acme.org.id}`, {
      period: 'monthly',
      limit_kind: 'tokens',
      limit: 100,
      thresholds: [{ pct: 100, action: 'block' }],
    });
    const now = Math.floor(Date.now() / 1000);
    const records = [{ id: `gate-${now}`, api_key_id: acme.member.id, model: 'm', input_tokens: 100, output_tokens: 1, created_at: now }];
    expect((await t.post('/api/v1/llm/usage/records', { records }, { key: ingest.key })).status).toBe(200);
    const check = (await t.post('/api/v1/llm/budgets/check', { api_key_id: acme.member.id }, { key: ingest.key })).body;
    expect(check.blocked_by).toHaveLength(2);
    const lastReset = Math.max(...check.blocked_by.map((b: { resets_at: number }) => b.resets_at));
    const first = check.blocked_by[0];

    const before = Math.floor(Date.now() / 1000);
    const denied = await t.get('/api/v1/llm/budgets/authorize', { key: acme.member.key });
    const after = Math.ceil(Date.now() / 1000);
    expect(denied.status).toBe(429);
    expect(denied.body.error).toMatchObject({ type: 'rate_limit_error', code: 'budget_exceeded', param: null });
    expect(denied.body.error.message).toContain(`Budget '${first.budget_id}' (${first.scope}, owner ${first.owner}) blocks this API key (and 1 more) until`);
    expect([keyBudget.body.id, orgBudget.body.id]).toContain(denied.headers.get('x-tally-budget-id'));
    const retryAfter = Number(denied.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(lastReset - after);
    expect(retryAfter).toBeLessThanOrEqual(lastReset - before);
    expect(denied.headers.get('x-tally-api-key-id')).toBeNull();

    const forbidden = await t.post('/api/v1/llm/budgets/authorize?deny_status=403', undefined, { key: acme.member.key });
    expect(forbidden.status).toBe(403);
    expect(forbidden.body.error).toMatchObject({ type: 'permission_error', code: 'budget_exceeded' });
    expect(Number(forbidden.headers.get('retry-after'))).toBeGreaterThan(0);

    // Envoy appends the client's path and query to its path_prefix: the same gate, the rest ignored.
    const envoy = await t.request('POST', '/api/v1/llm/budgets/authorize/v1/chat/completions?stream=true', undefined, { key: acme.member.key });
    expect([envoy.status, envoy.body.error.code]).toEqual([429, 'budget_exceeded']);
    const envoyOk = await t.get('/api/v1/llm/budgets/authorize/v1/models', { key: acme.orgAdmin.key });
    expect([envoyOk.status, envoyOk.headers.get('x-tally-api-key-id')]).toEqual([429, null]); // the org budget blocks every key of the org

    // Deleting both budgets lifts the denial at once.
    await t.delete(`/api/v1/llm/budgets/${keyBudget.body.id}`);
    await t.delete(`/api/v1/llm/budgets/${orgBudget.body.id}`);
    expect((await t.get('/api/v1/llm/budgets/authorize/v1/models', { key: acme.member.key })).status).toBe(200);
  });

  it('does not shadow GET /budgets/{budgetId}', async () => {
    const missing = await t.get('/api/v1/llm/budgets/bud_doesnotexist000000000000');
    expect(missing.status).toBe(404);
  });

  it('reads and drops a body a proxy forwards with the request (any type, encoding or size): the decision is the same as without one', async () => {
    const acme = await seedOrg(t, 'Gate Bodies');
    const gzipped = gzipSync(JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }));
    const bodies: Array<[string, Record<string, string>, Buffer | string]> = [
      ['json', { 'content-type': 'application/json' }, JSON.stringify({ model: 'gpt-4o', stream: true })],
      ['gzip json', { 'content-type': 'application/json', 'content-encoding': 'gzip' }, gzipped],
      ['brotli', { 'content-type': 'application/json', 'content-encoding': 'br' }, Buffer.from([1, 2, 3])],
      ['not json', { 'content-type': 'application/json' }, 'not json at all'],
      ['multipart', { 'content-type': 'multipart/form-data; boundary=x' }, '--x\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc\r\n--x--\r\n'],
      ['protobuf', { 'content-type': 'application/x-protobuf' }, Buffer.from([0x0a, 0x02, 0x08, 0x01])],
      ['300 KiB', { 'content-type': 'application/json' }, JSON.stringify({ prompt: 'p'.repeat(300 * 1024) })],
    ];
    const send = (path: string, headers: Record<string, string>, body: Buffer | string) =>
      fetch(`${t.baseUrl}${path}`, { method: 'POST', headers: { authorization: `Bearer ${acme.member.key}`, ...headers }, body });
    for (const [name, headers, body] of bodies) {
      for (const path of ['/api/v1/llm/budgets/authorize', '/api/v1/llm/budgets/authorize/v1/chat/completions']) {
        const res = await send(path, headers, body);
        expect([name, path, res.status, ((await res.json()) as { allowed?: boolean }).allowed]).toEqual([name, path, 200, true]);
      }
    }
    await t.put(`/api/v1/llm/budgets/apikey/${acme.member.id}`, { period: 'monthly', limit_kind: 'tokens', limit: 1, thresholds: [{ pct: 100, action: 'block' }] });
    const ingestKey = (await createSystemKey(t, 'ingest')).key;
    const ingest = await t.post('/api/v1/llm/usage/records', { records: [{ id: 'gate-body-1', api_key_id: acme.member.id, model: 'm', input_tokens: 5, output_tokens: 0, created_at: Math.floor(Date.now() / 1000) }] }, { key: ingestKey });
    expect(ingest.status).toBe(200);
    for (const [name, headers, body] of bodies) expect([name, (await send('/api/v1/llm/budgets/authorize/v1/chat/completions', headers, body)).status]).toEqual([name, 429]);
    // Bounded all the same: past BODY_LIMIT_BYTES, the documented 413.
    const huge = await send('/api/v1/llm/budgets/authorize', { 'content-type': 'application/json' }, 'x'.repeat(t.config.bodyLimitBytes + 1));
    expect([huge.status, ((await huge.json()) as { error: { code: string } }).error.code]).toEqual([413, 'payload_too_large']);
  });
});

import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';

describe('abuse controls', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ RATE_LIMIT_PER_SECOND: '2', RATE_LIMIT_BURST: '10', RATE_LIMIT_INGEST_PER_SECOND: '0' });
  });
  afterAll(() => t.close());

  it('limits each key to its burst, then answers 429 with Retry-After; other keys are unaffected', async () => {
    const acme = await seedOrg(t, 'Acme');
    const statuses: number[] = [];
    let limited;
    for (let i = 0; i < 14; i++) {
      const res = await t.get('/api/v1/api-keys', { key: acme.member.key });
      statuses.push(res.status);
      if (res.status === 429) limited = res;
    }
    // 10 at once (the burst) always pass; the 4 after them arrive faster than 2 per second refill.
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill(200));
    expect(statuses).toContain(429);
    expect(limited!.headers.get('retry-after')).toMatch(/^[1-9]\d*$/);
    expect(limited!.body.error).toMatchObject({ type: 'rate_limit_error', code: 'rate_limited' });
    expect((await t.get('/api/v1/api-keys', { key: acme.orgAdmin.key })).status).toBe(200);
  });

  it('leaves ingest keys alone when RATE_LIMIT_INGEST_PER_SECOND is 0', async () => {
    const acme = await seedOrg(t, 'Globex');
    const ingest = await createSystemKey(t, 'ingest');
    const statuses = new Set<number>();
    for (let i = 0; i < 12; i++) {
      statuses.add((await t.post('/api/v1/llm/budgets/check', { api_key_id: acme.member.id }, { key: ingest.key })).status);
    }
    expect([...statuses]).toEqual([200]);
  });

  it('sends security headers on API and docs responses', async () => {
    const api = await t.get('/health/live', { key: null });
    expect(Object.fromEntries(['x-content-type-options', 'x-frame-options', 'referrer-policy', 'content-security-policy', 'cache-control'].map((h) => [h, api.headers.get(h)]))).toEqual({
      'x-content-type-options': 'nosniff',
      'x-frame-options': 'DENY',
      'referrer-policy': 'no-referrer',
      'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
      'cache-control': 'no-store',
    });
    const error = await t.get('/api/v1/orgs', { key: null });
    expect(error.headers.get('x-content-type-options')).toBe('nosniff');
    const docs = await t.get('/docs', { key: null });
    expect(docs.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(docs.headers.get('x-frame-options')).toBe('DENY');
  });
});

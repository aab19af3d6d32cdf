import { request } from 'node:http';
import { gzipSync } from 'node:zlib';
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

  it('reads no request body for a caller without a valid key: 401 before any decompression or parsing', async () => {
    const acme = await seedOrg(t, 'Bodyless');
    const post = (headers: Record<string, string>, body: Buffer | string) =>
      fetch(`${t.baseUrl}/api/v1/llm/budgets/check`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
    // Bodies that parsing or decompression would refuse with a 400: without a valid key they are never read.
    const badJson = '{"api_key_id": ';
    const notGzip = Buffer.from('not gzip at all');
    const numbers = gzipSync(`{"a":[${Array(200_000).fill('1234567890123456').join(',')}]}`);
    for (const [headers, body] of [
      [{}, badJson],
      [{ authorization: 'Bearer mk-nope' }, badJson],
      [{ authorization: 'Basic abc' }, badJson],
      [{ 'content-encoding': 'gzip' }, notGzip],
      [{ 'content-encoding': 'gzip' }, numbers],
    ] as Array<[Record<string, string>, Buffer | string]>) {
      const res = await post(headers, body);
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: { type: string } }).error.type).toBe('authentication_error');
    }
    // With a valid key the same bodies are read (and refused as what they are).
    const ingest = await createSystemKey(t, 'ingest');
    const auth = { authorization: `Bearer ${ingest.key}` };
    expect((await post(auth, badJson)).status).toBe(400);
    expect((await post({ ...auth, 'content-encoding': 'gzip' }, notGzip)).status).toBe(400);
    expect((await post(auth, JSON.stringify({ api_key_id: acme.member.id }))).status).toBe(200);
    // A route that does not exist is still a 404, and a public one still answers without a key, body or not.
    expect((await fetch(`${t.baseUrl}/api/v1/nowhere`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: badJson })).status).toBe(404);
    expect((await t.get('/health/live', { key: null })).status).toBe(200);
    const probe = await new Promise<number>((resolve, reject) => {
      const req = request(`${t.baseUrl}/health/live`, { method: 'GET', headers: { 'content-type': 'application/json', 'content-length': '2' } }, (res) => (res.resume(), resolve(res.statusCode!)));
      req.on('error', reject);
      req.end('{}');
    });
    expect(probe).toBe(200);
    // Any valid key, even one the route refuses: a route that is not bulk ingest reads at most 256 KiB (once decompressed).
    const member = acme.member.key;
    const bomb = gzipSync(`{"x":[${Array(1_000_000).fill('0').join(',')}]}`);
    expect(bomb.length).toBeLessThan(10_000);
    const refused = await post({ authorization: `Bearer ${member}`, 'content-encoding': 'gzip' }, bomb);
    expect(refused.status).toBe(413);
    // Bulk ingest still takes BODY_LIMIT_BYTES.
    const batch = JSON.stringify({ records: Array.from({ length: 1000 }, (_v, i) => ({ id: `big-${Date.now()}-${i}`, api_key_id: acme.member.id, model: 'm'.repeat(200), input_tokens: 1, output_tokens: 1, created_at: Math.floor(Date.now() / 1000) })) });
    expect(batch.length).toBeGreaterThan(256 * 1024);
    const ingested = await fetch(`${t.baseUrl}/api/v1/llm/usage/records`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${ingest.key}` }, body: batch });
    expect(ingested.status).toBe(200);
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

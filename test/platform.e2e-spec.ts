import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { generateOpenApiYaml } from '../src/cli/openapi';
import { createTestDatabase } from './helpers/test-database';
import { startTestApp, TestApp } from './helpers/test-app';

describe('platform: health, metrics, docs, errors, request ids', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t.close());

  it('answers liveness and readiness without a key', async () => {
    expect(await t.get('/health/live', { key: null })).toMatchObject({ status: 200, body: { status: 'ok' } });
    expect(await t.get('/health/ready', { key: null })).toMatchObject({ status: 200, body: { status: 'ok' } });
  });

  it('runs on the project\'s Fastify (5.12+: bodies are parsed without a per-request AsyncResource.bind)', () => {
    const version = t.app.getHttpAdapter().getInstance().version;
    expect(version).toBe(JSON.parse(readFileSync(require.resolve('fastify/package.json'), 'utf8')).version);
    const [major, minor] = version.split('.').map(Number);
    expect(major > 5 || (major === 5 && minor >= 12)).toBe(true);
  });

  it('echoes a sane X-Request-ID and generates one otherwise', async () => {
    const echoed = await t.get('/health/live', { key: null, headers: { 'x-request-id': 'req-abc.123' } });
    expect(echoed.headers.get('x-request-id')).toBe('req-abc.123');
    const generated = await t.get('/health/live', { key: null, headers: { 'x-request-id': 'bad id with spaces!' } });
    expect(generated.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const onError = await t.get('/api/v1/orgs', { key: null });
    expect(onError.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('exposes Prometheus metrics with request counts and latencies by route and status', async () => {
    await t.get('/api/v1/orgs');
    const res = await t.get('/metrics', { key: null });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    expect(res.text).toMatch(/tally_http_requests_total\{method="GET",route="\/api\/v1\/orgs",status="200"\} \d+/);
    expect(res.text).toMatch(/tally_http_request_duration_seconds_bucket\{le="0.005",method="GET",route="\/api\/v1\/orgs",status="200"\}/);
    expect(res.text).toContain('tally_process_resident_memory_bytes');
  });

  it('serves Swagger UI and the live document as JSON and YAML', async () => {
    const ui = await t.get('/docs', { key: null });
    expect(ui.status).toBe(200);
    expect(ui.text).toContain('swagger-ui');
    const json = await t.get('/docs-json', { key: null });
    expect(json.body.openapi).toMatch(/^3\./);
    expect(json.body.components.securitySchemes).toMatchObject({
      bearer: { type: 'http', scheme: 'bearer' },
      'on-behalf-of': { type: 'apiKey', in: 'header', name: 'X-On-Behalf-Of' },
    });
    const yaml = await t.get('/docs-yaml', { key: null });
    expect(yaml.text).toContain('openapi: 3.');
    // The served document keeps every example (Swagger UI's own copy does not pre-fill optional parameters).
    const completions = json.body.paths['/api/v1/llm/usage/completions'].get;
    expect(completions.parameters.find((p: { name: string }) => p.name === 'user_ids').schema.example).toEqual(['user_123', 'user_456']);
  });

  it('keeps openapi.yaml equal to what the code generates (run `npm run openapi`)', async () => {
    const committed = readFileSync(resolve(__dirname, '..', 'openapi.yaml'), 'utf8');
    expect(committed).toBe(await generateOpenApiYaml());
  });

  it('documents every operation for SDKs and Swagger UI: id, summary, description, tag, examples, every error answer', async () => {
    const doc = (await t.get('/docs-json', { key: null })).body;
    const declaredTags = doc.tags.map((tag: { name: string }) => tag.name);
    const ids: string[] = [];
    for (const [path, item] of Object.entries<Record<string, any>>(doc.paths)) {
      for (const [method, op] of Object.entries<any>(item)) {
        const where = `${method.toUpperCase()} ${path}`;
        ids.push(op.operationId);
        expect({ where, id: op.operationId }).toEqual({ where, id: expect.stringMatching(/^[a-z][A-Za-z]*(\.[a-z][A-Za-z]*)+$/) });
        expect({ where, summary: !!op.summary, description: !!op.description }).toEqual({ where, summary: true, description: true });
        expect({ where, tags: op.tags.every((tag: string) => declaredTags.includes(tag)) && op.tags.length === 1 }).toEqual({ where, tags: true });
        for (const parameter of op.parameters ?? []) {
          expect({ where, parameter: parameter.name, example: parameter.schema?.example !== undefined }).toEqual({ where, parameter: parameter.name, example: true });
        }
        const codes = Object.keys(op.responses);
        const expected = op.security.length === 0 ? [] : ['400', '401', '403', '503'];
        if (op.requestBody) expected.push('413', '415');
        expect({ where, codes }).toEqual({ where, codes: expect.arrayContaining(expected) });
        for (const code of codes.filter((c) => c >= '400')) {
          const content = op.responses[code].content['application/json'];
          expect({ where, code, schema: content.schema.$ref, example: content.example?.error?.type }).toEqual({
            where,
            code,
            schema: '#/components/schemas/ErrorResponse',
            example: expect.any(String),
          });
        }
      }
    }
    expect(new Set(ids).size).toBe(ids.length);
  });

  describe('one error shape for everything', () => {
    it('unknown routes', async () => {
      const res = await t.get('/api/v1/nope');
      expect(res.status).toBe(404);
      expect(res.body).toEqual({ error: { message: 'No such route', type: 'not_found_error', code: 'route_not_found', param: null } });
    });

    it('malformed JSON', async () => {
      const res = await t.post('/api/v1/orgs', undefined, { raw: '{"name": ' });
      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_json' });
    });

    it('a body over the limit', async () => {
      const res = await t.post('/api/v1/orgs', { name: 'x'.repeat(t.config.bodyLimitBytes) });
      expect(res.status).toBe(413);
      expect(res.body.error).toMatchObject({ code: 'payload_too_large' });
    });

    it('a non-JSON content type', async () => {
      const res = await t.post('/api/v1/orgs', undefined, { raw: 'name=x', headers: { 'content-type': 'text/plain' } });
      expect(res.status).toBe(415);
      expect(res.body.error).toMatchObject({ code: 'unsupported_media_type' });
    });

    it('an empty body with a content type is no body: operations without one run, operations with one name the missing fields', async () => {
      const org = (await t.post('/api/v1/orgs', { name: 'EmptyBodies' })).body;
      const key = (await t.post('/api/v1/api-keys', { name: 'doomed', role: 'member', org_id: org.id })).body;
      // DELETE with Content-Type: application/json and no body (what many clients send on every request).
      const deleted = await t.request('DELETE', `/api/v1/api-keys/${key.id}`, undefined, { raw: '', headers: { 'content-type': 'application/json' } });
      expect(deleted.status).toBe(200);
      // curl -d '' sends a form content type.
      const form = await t.request('DELETE', `/api/v1/api-keys/${key.id}`, undefined, { raw: '', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      expect(form.status).toBe(200); // a revoke again: the same answer
      const missing = await t.post('/api/v1/orgs', undefined, { raw: '', headers: { 'content-type': 'application/json' } });
      expect(missing.status).toBe(400);
      expect(missing.body.error).toMatchObject({ code: 'validation_failed', param: 'name' });
      // A form body that is not empty is still a 415.
      expect((await t.post('/api/v1/orgs', undefined, { raw: 'name=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } })).status).toBe(415);
    });

    it('unknown query parameters', async () => {
      const res = await t.get('/api/v1/api-keys?colour=blue');
      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({ code: 'validation_failed', param: 'colour' });
    });

    it('body fields sent to an operation that takes no body: refused, nothing done (owner in a DELETE body deleted the org-owned budget)', async () => {
      const org = (await t.post('/api/v1/orgs', { name: 'NoBodyRoutes' })).body;
      const key = (await t.post('/api/v1/api-keys', { name: 'kept', role: 'member', org_id: org.id })).body;
      const budget = (owner: string) => ({ period: 'monthly', limit_kind: 'tokens', limit: 10, thresholds: [{ pct: 100, action: 'block' }], owner });
      const team = `/api/v1/llm/budgets/org/${org.id}/teams/blue`;
      expect((await t.put(team, budget('org'))).status).toBe(200);
      expect((await t.put(team, budget('cluster'))).status).toBe(200);

      const wrongOwner = await t.request('DELETE', team, { owner: 'cluster' });
      expect([wrongOwner.status, wrongOwner.body.error.code, wrongOwner.body.error.param]).toEqual([400, 'validation_failed', 'owner']);
      const revoke = await t.request('DELETE', `/api/v1/api-keys/${key.id}`, { foo: 1 });
      expect([revoke.status, revoke.body.error.param]).toEqual([400, 'foo']);
      const release = await t.post('/api/v1/llm/budgets/reservations/res_nope/release', { foo: 1 });
      expect([release.status, release.body.error.param]).toEqual([400, 'foo']);
      // Nothing was done: both budgets and the key are there.
      expect((await t.get(`${team}?owner=org`)).status).toBe(200);
      expect((await t.get(`${team}?owner=cluster`)).status).toBe(200);
      expect((await t.get(`/api/v1/api-keys/${key.id}`)).body.revoked_at).toBeNull();
      // An empty object is no field: the operation runs.
      expect((await t.request('DELETE', `${team}?owner=cluster`, {})).status).toBe(200);
    });
  });
});

describe('readiness when the database goes away', () => {
  it('answers 503 with Retry-After and the error shape, and the process stays up', async () => {
    const db = await createTestDatabase();
    const t = await startTestApp({}, { database: db });
    try {
      await db.drop(); // terminates every connection and removes the database
      const res = await t.get('/health/ready', { key: null });
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('5');
      expect(res.body.error).toMatchObject({ type: 'service_unavailable_error', code: 'not_ready', message: 'Not ready: database unreachable' });
      expect((await t.get('/health/live', { key: null })).status).toBe(200);
    } finally {
      await t.close();
    }
  });
});

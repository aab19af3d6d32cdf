import { SwaggerModule } from '@nestjs/swagger';
import { startTestApp, TestApp } from './helpers/test-app';

/**
 * What SDK generators read from the live OpenAPI document holds for the running service: every
 * operation documents the 4xx it gives, the longest request the document allows gets a
 * documented status (no 431 from the HTTP layer), and the paging and retry extensions point at
 * real parameters and fields.
 */
type Schema = Record<string, any>;
type Operation = Schema & { responses: Record<string, Schema> };

function operations(doc: Schema): Array<{ path: string; method: string; op: Operation }> {
  return Object.entries<Schema>(doc.paths).flatMap(([path, item]) => Object.entries<Operation>(item).map(([method, op]) => ({ path, method, op })));
}

function resolve(doc: Schema, schema: Schema | undefined): Schema {
  if (!schema) return {};
  if (schema.$ref) return resolve(doc, doc.components.schemas[schema.$ref.split('/').pop()]);
  return schema;
}

/** The longest value of a parameter the document allows (arrays: maxItems distinct values of maxLength). */
function longestValues(doc: Schema, parameter: Schema): string[] | undefined {
  const schema = resolve(doc, parameter.schema);
  if (schema.type === 'array') {
    const items = resolve(doc, schema.items);
    if (items.enum) return items.enum.map(String);
    const length = items.maxLength ?? 40;
    return Array.from({ length: schema.maxItems ?? 100 }, (_v, i) => `v${i}`.padEnd(length, 'a'));
  }
  if (schema.example !== undefined) return [String(schema.example)];
  return undefined;
}

describe('the OpenAPI document against the running service', () => {
  let t: TestApp;
  let doc: Schema;
  beforeAll(async () => {
    t = await startTestApp();
    doc = (await t.get('/docs-json', { key: null })).body;
  });
  afterAll(() => t.close());

  it('documents for every operation, health included, the 4xx it answers', async () => {
    const missing: string[] = [];
    for (const { path, method, op } of operations(doc)) {
      const statuses = Object.keys(op.responses);
      const expected = ['400', '431'];
      if (op.security?.length) expected.push('401');
      if (op.requestBody) expected.push('413', '415');
      for (const status of expected) if (!statuses.includes(status)) missing.push(`${method.toUpperCase()} ${path}: ${status}`);
    }
    expect(missing).toEqual([]);
    // Unknown query parameters are a 400 on the public probes too.
    for (const path of ['/health/live', '/health/ready']) {
      const res = await t.get(`${path}?verbose=1`, { key: null });
      expect([path, res.status, res.body.error.param]).toEqual([path, 400, 'verbose']);
    }
  });

  it('answers the longest request the document allows, for every GET, with a documented status', async () => {
    const answers: string[] = [];
    let longest = 0;
    for (const { path, method, op } of operations(doc)) {
      if (method !== 'get') continue;
      const params: Schema[] = op.parameters ?? [];
      const url = path.replace(/\{(\w+)\}/g, (_m, name) => encodeURIComponent(String(params.find((p) => p.name === name)?.schema?.example ?? 'x')));
      const query = new URLSearchParams();
      for (const p of params.filter((p) => p.in === 'query')) {
        for (const value of longestValues(doc, p) ?? []) query.append(p.name, value);
      }
      const target = query.size ? `${url}?${query}` : url;
      longest = Math.max(longest, target.length);
      const res = await t.get(target, { headers: { 'x-on-behalf-of': 'u'.repeat(150) }, key: op.security?.length ? undefined : null });
      if (!(String(res.status) in op.responses)) answers.push(`GET ${path} (${target.length} characters): undocumented ${res.status} ${res.text.slice(0, 120)}`);
    }
    expect(answers).toEqual([]);
    // models alone at its maximum (100 values of 200 characters) is over Node's default 16 KiB.
    expect(longest).toBeGreaterThan(50_000);
  });

  it('answers a request head beyond what it accepts (percent-encoded values) with the documented 431', async () => {
    const query = new URLSearchParams();
    for (let i = 0; i < 100; i++) query.append('models', `${i}`.padEnd(200, 'é'));
    const res = await t.get(`/api/v1/llm/usage/completions?start_time=1704067200&${query}`);
    expect([res.status, res.body.error.message]).toEqual([431, 'The request line or headers are too large']);
    // Written before any header was read, it still carries an X-Request-ID, as every answer does.
    expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(doc.paths['/api/v1/llm/usage/completions'].get.responses['431']).toBeDefined();
  });

  it('marks every cursor-paged operation for SDK paging, with real parameters and response fields', () => {
    // Cursor-paged: a `page` or `after` query parameter, and `has_more` in the answer.
    const cursorPaged = operations(doc).filter(({ op }) => {
      const cursor = (op.parameters ?? []).some((p: Schema) => p.in === 'query' && ['page', 'after'].includes(p.name));
      const body = resolve(doc, op.responses['200']?.content?.['application/json']?.schema);
      return cursor && body.properties?.has_more !== undefined;
    });
    expect(cursorPaged.map(({ path }) => path)).toEqual(
      expect.arrayContaining([
        '/api/v1/orgs',
        '/api/v1/api-keys',
        '/api/v1/llm/budgets',
        '/api/v1/llm/budgets/{budgetId}/deliveries',
        '/api/v1/llm/usage/completions',
        '/api/v1/llm/usage/costs',
        '/v1/organization/costs',
        '/v1/organization/usage/completions',
      ]),
    );
    const marked = operations(doc).filter(({ op }) => op['x-speakeasy-pagination']);
    expect(marked.map(({ path }) => path).sort()).toEqual(cursorPaged.map(({ path }) => path).sort());
    for (const { path, op } of marked) {
      const paging = op['x-speakeasy-pagination'];
      expect([path, paging.type]).toEqual([path, 'cursor']);
      const names = (op.parameters ?? []).map((p: Schema) => p.name);
      for (const input of paging.inputs) expect([path, names]).toEqual([path, expect.arrayContaining([input.name])]);
      const body = resolve(doc, op.responses['200'].content['application/json'].schema);
      for (const output of Object.values<string>(paging.outputs)) expect([path, Object.keys(body.properties)]).toEqual([path, expect.arrayContaining([output.replace('$.', '')])]);
    }
  });

  it('lets SDKs retry server errors and timeouts on operations safe to repeat, never a denial, never a creating POST', () => {
    for (const { path, method, op } of operations(doc)) {
      const retries = op['x-speakeasy-retries'];
      if (retries) expect([path, retries.statusCodes]).toEqual([path, ['5XX', '408']]);
      if (method === 'post' && ['/api/v1/orgs', '/api/v1/api-keys', '/api/v1/llm/budgets/deliveries/{deliveryId}/redeliver'].includes(path)) {
        expect([path, retries]).toEqual([path, undefined]);
      }
      if (method !== 'post') expect([path, method, retries?.strategy]).toEqual([path, method, 'backoff']);
    }
    const get = (path: string, method: string) => doc.paths[path][method]['x-speakeasy-retries'];
    expect(get('/api/v1/llm/usage/records', 'post')).toBeDefined();
    expect(get('/api/v1/llm/usage/otlp/v1/traces', 'post')).toBeDefined();
    expect(get('/api/v1/llm/budgets/authorize', 'get').statusCodes).not.toContain('429');
  });
});

describe('the API documents are built on the first request for them', () => {
  it('starts without building the OpenAPI document; the first of /docs-json, /docs-yaml and Swagger UI builds it, once', async () => {
    const build = jest.spyOn(SwaggerModule, 'createDocument'); // observed, not replaced
    const t = await startTestApp();
    try {
      expect(build).not.toHaveBeenCalled();
      const json = await t.get('/docs-json', { key: null });
      expect(json.status).toBe(200);
      expect(json.body.paths['/api/v1/llm/budgets/check']).toBeDefined();
      const yaml = await t.get('/docs-yaml', { key: null });
      expect(yaml.status).toBe(200);
      expect(yaml.text).toContain('/api/v1/llm/budgets/check:');
      const init = await t.get('/docs/swagger-ui-init.js', { key: null });
      expect(init.status).toBe(200);
      expect(init.text).toContain('/api/v1/llm/budgets/check');
      expect(build).toHaveBeenCalledTimes(1);
    } finally {
      build.mockRestore();
      await t.close();
    }
  });
});

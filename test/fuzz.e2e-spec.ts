import { Socket } from 'node:net';
import { startTestApp, TestApp } from './helpers/test-app';
import { prng } from './helpers/usage-random';

/**
 * Hostile input, generated from the live OpenAPI document: every operation, every parameter and
 * every body field gets values it must refuse (wrong types, huge and negative numbers, fractional
 * times, enormous strings and arrays, control characters, unknown enum values, bad cursors), plus
 * whole-body attacks. Every answer must be a 4xx in the SPEC §6 shape; nothing may be written.
 */
type Schema = Record<string, any>;
const HUGE_STRING = 'x'.repeat(70_000);

function hostileValues(schema: Schema): unknown[] {
  // A field that accepts a decimal string or a number: refuse what is neither.
  if (schema.oneOf) return [{ nested: true }, [1], true, 'twelve', '1e5', '1.0000000001', -1, 1e308, HUGE_STRING];
  const type = schema.type ?? (schema.enum ? 'string' : schema.allOf ? 'string' : 'object');
  const common: unknown[] = [{ nested: { deep: [1, 2, 3] } }, [[['x']]], true];
  if (schema.enum || schema.allOf) return [...common, 'not-a-member', 'ünïcødé', 'a\u0000b', 12, HUGE_STRING];
  switch (type) {
    case 'string':
      return [...common, 12, 'a\u0000b', 'line\r\nbreak', HUGE_STRING, ...(schema.maxLength ? ['y'.repeat(schema.maxLength + 1)] : []), ...(schema.minLength ? [''] : [])];
    case 'integer':
    case 'number':
      return [...common, 'twelve', '12abc', 1.5, -1, -1e308, 1e308, 2 ** 63, '1e400', null, Number.MAX_SAFE_INTEGER + 2];
    case 'boolean':
      return [...common, 'yes', 2, null];
    case 'array':
      return ['scalar', { not: 'an array' }, Array.from({ length: 20_000 }, () => 'z'), [null], [{ bad: true }], [[]], [[{ bad: true }]]];
    default:
      return [...common, 'a string', 7, []];
  }
}

/** In a query string every value is text: hostile means text the parameter must refuse. */
function queryHostileValues(schema: Schema): string[] {
  const values = ['a\u0000b', 'line\r\nbreak', 'z'.repeat(20_000)];
  if (schema.maxLength) values.push('y'.repeat(schema.maxLength + 1));
  if (schema.enum || schema.allOf) values.push('not-a-member', 'ünïcødé');
  if (schema.type === 'integer' || schema.type === 'number') values.push('twelve', '12abc', '1.5', '-1e308', '1e400', '0x10', String(2 ** 63));
  if (schema.type === 'boolean') values.push('yes', '2');
  if (schema.type === 'array') values.push(...queryHostileValues(schema.items ?? {}).filter((v) => v !== 'z'.repeat(20_000)));
  return values;
}

function resolve(doc: Schema, schema: Schema | undefined): Schema {
  if (!schema) return {};
  if (schema.$ref) return resolve(doc, doc.components.schemas[schema.$ref.split('/').pop()]);
  if (schema.allOf?.length === 1 && schema.allOf[0].$ref) return { ...resolve(doc, schema.allOf[0]), ...schema, allOf: undefined };
  return schema;
}

/** A plausible body from the schema's examples, for mutating one field at a time. */
function exampleOf(doc: Schema, schema: Schema): unknown {
  const s = resolve(doc, schema);
  if (s.example !== undefined) return s.example;
  if (s.type === 'array') return [exampleOf(doc, s.items ?? {})];
  if (s.properties) return Object.fromEntries(Object.entries<Schema>(s.properties).map(([k, v]) => [k, exampleOf(doc, v)]));
  if (s.enum) return s.enum[0];
  return s.type === 'integer' || s.type === 'number' ? 1 : s.type === 'boolean' ? true : 'x';
}

interface Case {
  name: string;
  method: string;
  url: string;
  body?: string;
  headers?: Record<string, string>;
}

function casesFor(doc: Schema, rand: () => number): Case[] {
  const cases: Case[] = [];
  for (const [path, item] of Object.entries<Schema>(doc.paths)) {
    for (const [method, op] of Object.entries<Schema>(item)) {
      if (!op.security?.length) continue; // public routes (health) take no input
      const params: Schema[] = op.parameters ?? [];
      const pathValues: Record<string, string> = {};
      for (const p of params.filter((p) => p.in === 'path')) pathValues[p.name] = String(p.schema?.example ?? 'x');
      const fill = (values: Record<string, string>) => path.replace(/\{(\w+)\}/g, (_m, name) => encodeURIComponent(values[name]));
      const query = params.filter((p) => p.in === 'query');
      const baseQuery = new URLSearchParams();
      for (const p of query.filter((p) => p.required)) baseQuery.set(p.name, String(p.schema?.example ?? exampleOf(doc, p.schema)));
      const bodySchema = op.requestBody?.content?.['application/json']?.schema;
      const baseBody = bodySchema ? (exampleOf(doc, bodySchema) as Record<string, unknown>) : undefined;
      const base = { method: method.toUpperCase(), body: baseBody ? JSON.stringify(baseBody) : undefined };
      const tag = `${method.toUpperCase()} ${path}`;

      for (const p of params.filter((p) => p.in === 'path')) {
        for (const bad of ['\u0000', 'y'.repeat(500), 'ünï', "' OR 1=1 --", '\t']) {
          cases.push({ ...base, name: `${tag} path ${p.name}=${bad.slice(0, 20)}`, url: fill({ ...pathValues, [p.name]: bad }) + (baseQuery.size ? `?${baseQuery}` : '') });
        }
      }
      for (const p of query) {
        for (const bad of queryHostileValues(resolve(doc, p.schema))) {
          const q = new URLSearchParams(baseQuery);
          q.set(p.name, String(bad));
          cases.push({ ...base, name: `${tag} query ${p.name}=${String(bad).slice(0, 20)}`, url: `${fill(pathValues)}?${q}` });
        }
        if (p.name === 'page') {
          for (const cursor of ['eyJnot-a-cursor', Buffer.from('{"t":1}').toString('base64url'), Buffer.from(JSON.stringify({ v: 1, s: -5, h: 'x' })).toString('base64url')]) {
            const q = new URLSearchParams(baseQuery);
            q.set('page', cursor);
            cases.push({ ...base, name: `${tag} bad cursor`, url: `${fill(pathValues)}?${q}` });
          }
        }
      }
      const unknown = new URLSearchParams(baseQuery);
      unknown.set('definitely_unknown', '1');
      cases.push({ ...base, name: `${tag} unknown query`, url: `${fill(pathValues)}?${unknown}` });
      const url = fill(pathValues) + (baseQuery.size ? `?${baseQuery}` : '');

      if (baseBody && typeof baseBody === 'object') {
        const schema = resolve(doc, bodySchema);
        for (const [field, fieldSchema] of Object.entries<Schema>(schema.properties ?? {})) {
          for (const bad of hostileValues(resolve(doc, fieldSchema))) {
            if (bad === null && (resolve(doc, fieldSchema).nullable || !(schema.required ?? []).includes(field))) continue; // null = absent
            cases.push({ ...base, name: `${tag} body ${field}=${JSON.stringify(bad)?.slice(0, 20)}`, url, body: JSON.stringify({ ...baseBody, [field]: bad }) });
          }
          const items = resolve(doc, resolve(doc, fieldSchema).items);
          if (items.properties && Array.isArray(baseBody[field])) {
            for (const [inner, innerSchema] of Object.entries<Schema>(items.properties)) {
              const pick = hostileValues(resolve(doc, innerSchema));
              const bad = pick[Math.floor(rand() * pick.length)];
              const element = { ...(baseBody[field] as Record<string, unknown>[])[0], [inner]: bad };
              cases.push({ ...base, name: `${tag} body ${field}[0].${inner}`, url, body: JSON.stringify({ ...baseBody, [field]: [element] }) });
            }
          }
        }
        for (const [name, body] of [
          ['malformed JSON', '{"a": '],
          ['a JSON array', '[1,2,3]'],
          ['a JSON string', '"hello"'],
          ['null', 'null'],
          // OTLP's contract (the protobuf-or-JSON body) is the exception: its receivers must ignore unknown fields.
          ...(op.requestBody?.content?.['application/x-protobuf'] ? [] : [['an unknown field', JSON.stringify({ ...baseBody, zzz_unknown: 1 })]]),
          ['a huge body', JSON.stringify({ ...baseBody, pad: 'p'.repeat(5 * 1024 * 1024) })],
          ['deep nesting', '['.repeat(5000) + ']'.repeat(5000)],
        ]) {
          cases.push({ ...base, name: `${tag} ${name}`, url, body });
        }
        cases.push({ ...base, name: `${tag} form body`, url, body: 'a=1&b=2', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      }
      for (const value of ['*', 'é', 'x'.repeat(151), '', 'a\tb']) {
        cases.push({ ...base, name: `${tag} X-On-Behalf-Of ${JSON.stringify(value).slice(0, 12)}`, url, headers: { 'x-on-behalf-of': value } });
      }
    }
  }
  return cases;
}

/** Sends raw bytes over HTTP/1.1, for header values fetch refuses to send (CR/LF injection, NUL). */
function rawRequest(baseUrl: string, head: string): Promise<{ status: number; body: string }> {
  const { port } = new URL(baseUrl);
  return new Promise((resolvePromise, reject) => {
    const socket = new Socket();
    let data = '';
    socket.connect(Number(port), '127.0.0.1', () => socket.write(head));
    socket.on('data', (chunk) => (data += chunk));
    socket.on('close', () => resolvePromise({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(data)?.[1] ?? 0), body: data.split('\r\n\r\n')[1] ?? '' }));
    socket.on('error', reject);
    socket.setTimeout(5000, () => socket.destroy());
  });
}

describe('hostile input fuzz', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ LOG_LEVEL: 'warn' });
  });
  afterAll(() => t.close());

  async function tableCounts(): Promise<Record<string, number>> {
    const tables: Array<{ tablename: string }> = await t.dataSource.query(`SELECT tablename FROM pg_tables WHERE schemaname = 'public'`);
    const counts: Record<string, number> = {};
    for (const { tablename } of tables) counts[tablename] = (await t.dataSource.query(`SELECT count(*)::int AS n FROM "${tablename}"`))[0].n;
    return counts;
  }

  it('answers every generated hostile request with a 4xx in the error shape, writes nothing, and stays bounded in memory', async () => {
    const doc = (await t.get('/docs-json', { key: null })).body;
    const cases = casesFor(doc, prng(7));
    expect(cases.length).toBeGreaterThan(700);
    const before = await tableCounts();
    const rssBefore = process.memoryUsage().rss;
    const failures: string[] = [];
    const statuses = new Map<number, number>();
    for (let i = 0; i < cases.length; i += 8) {
      await Promise.all(
        cases.slice(i, i + 8).map(async (c) => {
          const res = await t.request(c.method, c.url, undefined, { raw: c.body, headers: c.headers });
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          const shaped = res.body && typeof res.body === 'object' && typeof res.body.error === 'object' && ['message', 'type', 'code', 'param'].every((k) => k in res.body.error);
          if (res.status < 400 || res.status >= 500 || !shaped) failures.push(`${c.name}: ${res.status} ${res.text.slice(0, 200)}`);
        }),
      );
    }
    expect(failures).toEqual([]);
    expect(await tableCounts()).toEqual(before);
    // The process is where the app runs: its memory must not grow without bound.
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(300 * 1024 * 1024);
    expect([...statuses.keys()].every((s) => s >= 400 && s < 500)).toBe(true);
    (globalThis as { fuzzCases?: number }).fuzzCases = cases.length;
    // eslint-disable-next-line no-console
    console.log(`fuzz: ${cases.length} cases; statuses ${JSON.stringify(Object.fromEntries(statuses))}`);
  });

  it('refuses header injection in X-On-Behalf-Of at the HTTP layer', async () => {
    const res = await rawRequest(
      t.baseUrl,
      `GET /api/v1/orgs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t.adminKey}\r\nX-On-Behalf-Of: user\rX-Injected: 1\r\nConnection: close\r\n\r\n`,
    );
    expect(res.status).toBe(400);
    const folded = await rawRequest(
      t.baseUrl,
      `GET /api/v1/orgs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t.adminKey}\r\nX-On-Behalf-Of: user\u0000evil\r\nConnection: close\r\n\r\n`,
    );
    expect(folded.status).toBe(400);
  });
});

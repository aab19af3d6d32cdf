import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { deleteKeysWithPrefix } from '../../src/redis/redis';
import { DataSource } from 'typeorm';
import { prepareDependencies } from '../../src/bootstrap';
import { createRootLogger } from '../../src/common/logger';
import { AppConfig, loadConfig } from '../../src/config/app-config';
import { createHttpApp } from '../../src/http-app';
import { createTestDatabase, TestDatabase } from './test-database';

export interface HttpResult<T = any> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

export interface RequestOptions {
  key?: string | null;
  headers?: Record<string, string>;
  /** A raw body string sent as is (for malformed-JSON tests). */
  raw?: string;
}

export interface TestApp {
  app: NestFastifyApplication;
  config: AppConfig;
  db: TestDatabase;
  baseUrl: string;
  adminKey: string;
  /** Every log line the app wrote, for tests that check what is (not) logged. */
  logs: string[];
  dataSource: DataSource;
  request<T = any>(method: string, path: string, body?: unknown, options?: RequestOptions): Promise<HttpResult<T>>;
  get<T = any>(path: string, options?: RequestOptions): Promise<HttpResult<T>>;
  post<T = any>(path: string, body?: unknown, options?: RequestOptions): Promise<HttpResult<T>>;
  put<T = any>(path: string, body?: unknown, options?: RequestOptions): Promise<HttpResult<T>>;
  delete<T = any>(path: string, options?: RequestOptions): Promise<HttpResult<T>>;
  close(): Promise<void>;
}

export function randomAdminKey(): string {
  return `mk-${randomBytes(30).toString('base64').replace(/[^A-Za-z0-9]/g, '').padEnd(36, 'x')}`;
}

/**
 * Boots the real application on Fastify, listening on a loopback port, against its own
 * database (cloned from the migrated template) and its own Redis prefix.
 */
export async function startTestApp(env: Record<string, string> = {}, options: { database?: TestDatabase } = {}): Promise<TestApp> {
  const db = options.database ?? (await createTestDatabase());
  const adminKey = randomAdminKey();
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      logs.push(String(chunk));
      done();
    },
  });
  const logger = createRootLogger(env.LOG_LEVEL ?? 'info', sink);
  const base = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    DATABASE_URL: db.url,
    REDIS_URL: process.env.TEST_REDIS_URL,
    REDIS_PREFIX: `test-${randomBytes(5).toString('hex')}`,
    ADMIN_API_KEY: adminKey,
    SECRETS_KEY: randomBytes(32).toString('hex'),
    WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
    RATE_LIMIT_PER_SECOND: '0', // tests that need rate limiting turn it on
    // The fixtures date from 2024 (T0): keep everything unless a test is about retention.
    RECORDS_RETENTION_DAYS: '36500',
    MINUTE_ROLLUP_RETENTION_DAYS: '36500',
    ...env,
  });
  const { config } = await prepareDependencies(base, logger);
  const app = await createHttpApp(config, logger);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const baseUrl = await app.getUrl();
  const dataSource = app.get(DataSource);

  const request = async <T>(method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<HttpResult<T>> => {
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    const key = opts.key === undefined ? adminKey : opts.key;
    if (key !== null) headers.authorization = `Bearer ${key}`;
    let payload: string | undefined = opts.raw;
    if (payload === undefined && body !== undefined) payload = JSON.stringify(body);
    if (payload !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
      headers['content-type'] = 'application/json';
    }
    const response = await fetch(baseUrl + path, { method, headers, body: payload });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON (metrics, YAML): keep the text
    }
    return { status: response.status, headers: response.headers, body: parsed as T, text };
  };

  return {
    app,
    config,
    db,
    baseUrl,
    adminKey,
    logs,
    dataSource,
    request,
    get: (path, o) => request('GET', path, undefined, o),
    post: (path, body, o) => request('POST', path, body, o),
    put: (path, body, o) => request('PUT', path, body, o),
    delete: (path, o) => request('DELETE', path, undefined, o),
    close: async () => {
      await app.close();
      if (!options.database) await db.drop();
      // The prefix was made up for this app alone: leave nothing of it in the shared Redis.
      if (env.REDIS_PREFIX === undefined) await deleteRedisPrefix(config.redisUrl, config.redisPrefix);
    },
  };
}

export const deleteRedisPrefix = deleteKeysWithPrefix;

/** Creates an org and keys of each tenant role in it, through the API. */
export async function seedOrg(t: TestApp, name = 'Acme', teamId: string | null = null) {
  const org = (await t.post('/api/v1/orgs', { name })).body;
  const make = async (role: string, extra: Record<string, unknown> = {}) => {
    const res = await t.post('/api/v1/api-keys', { name: `${name}-${role}`, role, org_id: org.id, ...extra });
    if (res.status !== 201) throw new Error(`creating a ${role} key: ${res.status} ${res.text}`);
    return res.body as { id: string; key: string; org_id: string; team_id: string | null };
  };
  const orgAdmin = await make('org_admin');
  const member = await make('member', teamId ? { team_id: teamId } : {});
  return { org, orgAdmin, member, make };
}

export async function createSystemKey(t: TestApp, role: 'ingest' | 'cluster_admin') {
  const res = await t.post('/api/v1/api-keys', { name: role, role });
  if (res.status !== 201) throw new Error(`creating a ${role} key: ${res.status} ${res.text}`);
  return res.body as { id: string; key: string };
}

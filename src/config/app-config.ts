import { isAbsolute, resolve } from 'node:path';

export type ProcessRole = 'all' | 'api' | 'worker';
export const PROCESS_ROLES: readonly ProcessRole[] = ['all', 'api', 'worker'];

/** Typed, validated configuration. Built once from the environment by {@link loadConfig}. */
export interface AppConfig {
  port: number;
  host: string;
  /** Unset: an embedded PostgreSQL is started under `dataDir` and this is filled in at start-up. */
  databaseUrl: string | undefined;
  redisUrl: string;
  /**
   * REDIS_CLUSTER_NODES (`host:port,host:port,…`): a Redis Cluster, reached through these seed
   * nodes (REDIS_URL's user, password and TLS still apply; its host and database do not).
   */
  redisClusterNodes: Array<{ host: string; port: number }> | undefined;
  /** Prefix of every Redis key, queue and channel this process uses. */
  redisPrefix: string;
  adminApiKey: string | undefined;
  processRole: ProcessRole;
  webhookAllowPrivateTargets: boolean;
  /** 32-byte key encrypting webhook secrets at rest; generated under `dataDir` when unset. */
  secretsKey: Buffer | undefined;
  dataDir: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Largest accepted request body, bytes. */
  bodyLimitBytes: number;
  /** How often the worker re-evaluates every budget, milliseconds. */
  alertEvaluationIntervalMs: number;
  /** Total time a webhook delivery attempt may take (connect, send, response headers), milliseconds. */
  webhookTimeoutMs: number;
  /** First retry delay of a failed webhook delivery; later ones double up to 480 × this (see alerts/webhook-backoff.ts). */
  webhookRetryBaseMs: number;
  /** Attempts per webhook delivery, the first included. */
  webhookMaxAttempts: number;
  /** Requests per second per API key (0: no limit), and the burst allowed above that rate. */
  rateLimitPerSecond: number;
  rateLimitBurst: number;
  /** The same for ingest keys (the gateway's own traffic; 0: no limit). */
  rateLimitIngestPerSecond: number;
  /** How often the worker compares reservation counters in Redis with PostgreSQL and repairs drift, milliseconds. */
  reservationReconcileIntervalMs: number;
  /** Currency of every amount (CURRENCY, lowercase ISO 4217; default `usd`). */
  currency: string;
  /** Pause of the worker's rollup folder when the journal is drained, milliseconds. */
  rollupFoldIntervalMs: number;
  /** Journal rows moved into the rollups per fold transaction. */
  rollupFoldBatch: number;
  /** Raw records are kept this many days (monthly partitions dropped past it); older records are refused. */
  recordsRetentionDays: number;
  /** The per-minute rollup is kept this many days; older `1m` reports are refused. */
  minuteRollupRetentionDays: number;
  /** How often the worker creates partitions ahead and drops the ones past retention, milliseconds. */
  partitionMaintenanceIntervalMs: number;
  /** A Redis command on a request path that gets no answer by then fails (503), milliseconds. */
  redisCommandTimeoutMs: number;
  /** PostgreSQL connections of a process that serves the API (PROCESS_ROLE api; `all` adds the worker's). */
  databasePoolSize: number;
  /** PostgreSQL connections of the worker (PROCESS_ROLE worker; `all` adds them to the API's). */
  workerDatabasePoolSize: number;
  /** Longest a usage or cost report query may run in PostgreSQL (statement_timeout), milliseconds. */
  reportStatementTimeoutMs: number;
  /**
   * Rows of a report read per round trip from its server-side cursor: a report of tens of
   * thousands of rows is never held whole in the process.
   */
  reportFetchRows: number;
  /**
   * Reports (each holding a pooled connection while it is read) a process runs at once, in all
   * and per org; more wait, then get a 503 `reports_busy`. Default: half the pool, and half that.
   */
  reportConcurrency: number;
  reportConcurrencyPerOrg: number;
  /**
   * Port of the worker's own `/metrics` and `/health/live` (0: off). Default 9464 for
   * PROCESS_ROLE=worker; off for `all`, whose API port serves the same metrics, unless set.
   */
  workerMetricsPort: number;
  /** METRICS_BUDGET_GAUGES: one spend-ratio gauge per budget (opt-in: one series per budget). */
  metricsBudgetGauges: boolean;
  /** Webhook deliveries of one org in flight at once, across every worker (per-org fairness). */
  webhookOrgConcurrency: number;
}

export const DEFAULT_WORKER_METRICS_PORT = 9464;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

export const API_KEY_PATTERN = /^mk-[A-Za-z0-9]{32,}$/;
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

type Env = Record<string, string | undefined>;

/** Reads and validates every variable; throws one {@link ConfigError} naming all bad ones. */
export function loadConfig(env: Env = process.env): AppConfig {
  const problems: string[] = [];
  const read = (name: string): string | undefined => {
    const value = env[name];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  };
  const integer = (name: string, fallback: number, min: number, max: number): number => {
    const raw = read(name);
    if (raw === undefined) return fallback;
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
      problems.push(`${name} must be an integer from ${min} to ${max} (got "${raw}")`);
      return fallback;
    }
    return Number(raw);
  };
  const boolean = (name: string, fallback: boolean): boolean => {
    const raw = read(name)?.toLowerCase();
    if (raw === undefined) return fallback;
    if (['true', '1', 'yes'].includes(raw)) return true;
    if (['false', '0', 'no'].includes(raw)) return false;
    problems.push(`${name} must be true or false (got "${raw}")`);
    return fallback;
  };
  const url = (name: string, protocols: string[]): string | undefined => {
    const raw = read(name);
    if (raw === undefined) return undefined;
    try {
      const parsed = new URL(raw);
      if (!protocols.includes(parsed.protocol)) throw new Error('protocol');
      return raw;
    } catch {
      problems.push(`${name} must be a ${protocols.map((p) => p + '//').join(' or ')} URL`);
      return undefined;
    }
  };

  const port = integer('PORT', 3000, 0, 65535);
  const host = read('HOST') ?? '0.0.0.0';
  const databaseUrl = url('DATABASE_URL', ['postgres:', 'postgresql:']);
  const redisUrl = url('REDIS_URL', ['redis:', 'rediss:']) ?? 'redis://127.0.0.1:6379';
  // The path, if any, is a database index (ioredis would SELECT NaN, or another database silently).
  if (!/^\/?(\d{1,4})?$/.test(new URL(redisUrl).pathname)) problems.push('REDIS_URL: its path must be a database index, e.g. redis://127.0.0.1:6379/0');

  let redisClusterNodes: AppConfig['redisClusterNodes'];
  const rawClusterNodes = read('REDIS_CLUSTER_NODES');
  if (rawClusterNodes !== undefined) {
    redisClusterNodes = rawClusterNodes.split(',').map((node) => {
      const match = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(node.trim());
      if (!match || Number(match[2]) > 65535) problems.push(`REDIS_CLUSTER_NODES must be host:port pairs separated by commas (got "${node.trim()}")`);
      return { host: match?.[1] ?? '', port: Number(match?.[2] ?? 0) };
    });
  }

  const redisPrefix = read('REDIS_PREFIX') ?? 'tally';
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(redisPrefix)) {
    problems.push('REDIS_PREFIX must be 1-64 letters, digits, "_", "." or "-"');
  }

  const adminApiKey = read('ADMIN_API_KEY');
  if (adminApiKey !== undefined && !API_KEY_PATTERN.test(adminApiKey)) {
    // Never echo the value: it is a secret.
    problems.push('ADMIN_API_KEY must be "mk-" followed by at least 32 letters or digits');
  }

  const role = (read('PROCESS_ROLE') ?? 'all') as ProcessRole;
  if (!PROCESS_ROLES.includes(role)) {
    problems.push(`PROCESS_ROLE must be one of ${PROCESS_ROLES.join(', ')} (got "${role}")`);
  }

  let secretsKey: Buffer | undefined;
  const rawSecretsKey = read('SECRETS_KEY');
  if (rawSecretsKey !== undefined) {
    secretsKey = parseSecretsKey(rawSecretsKey);
    if (!secretsKey) problems.push('SECRETS_KEY must be 32 bytes, as 64 hex digits or base64');
  }

  const logLevel = (read('LOG_LEVEL') ?? 'info') as AppConfig['logLevel'];
  if (!LOG_LEVELS.includes(logLevel)) {
    problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')} (got "${logLevel}")`);
  }

  const currency = (read('CURRENCY') ?? 'usd').toLowerCase();
  if (!/^[a-z]{3}$/.test(currency)) problems.push(`CURRENCY must be a three-letter ISO 4217 code (got "${currency}")`);

  const workerMetricsPort = integer('WORKER_METRICS_PORT', role === 'worker' ? DEFAULT_WORKER_METRICS_PORT : 0, 0, 65535);

  const dataDirRaw = read('DATA_DIR') ?? '.data';
  const databasePoolSize = integer('DATABASE_POOL_SIZE', 20, 2, 1000);
  const reportConcurrency = integer('REPORT_CONCURRENCY', Math.max(1, Math.floor(databasePoolSize / 2)), 1, 1000);
  const config: AppConfig = {
    port,
    host,
    databaseUrl,
    redisUrl,
    redisClusterNodes,
    redisPrefix,
    adminApiKey,
    processRole: role,
    webhookAllowPrivateTargets: boolean('WEBHOOK_ALLOW_PRIVATE_TARGETS', false),
    secretsKey,
    dataDir: isAbsolute(dataDirRaw) ? dataDirRaw : resolve(process.cwd(), dataDirRaw),
    logLevel,
    bodyLimitBytes: integer('BODY_LIMIT_BYTES', 4 * 1024 * 1024, 1024, 64 * 1024 * 1024),
    alertEvaluationIntervalMs: integer('ALERT_EVALUATION_INTERVAL_MS', 5000, 100, 3_600_000),
    webhookTimeoutMs: integer('WEBHOOK_TIMEOUT_MS', 10_000, 100, 60_000),
    webhookRetryBaseMs: integer('WEBHOOK_RETRY_BASE_MS', 15_000, 10, 3_600_000),
    webhookMaxAttempts: integer('WEBHOOK_MAX_ATTEMPTS', 20, 1, 50),
    rateLimitPerSecond: integer('RATE_LIMIT_PER_SECOND', 50, 0, 1_000_000),
    rateLimitBurst: integer('RATE_LIMIT_BURST', 100, 1, 10_000_000),
    rateLimitIngestPerSecond: integer('RATE_LIMIT_INGEST_PER_SECOND', 0, 0, 10_000_000),
    reservationReconcileIntervalMs: integer('RESERVATION_RECONCILE_INTERVAL_MS', 60_000, 100, 86_400_000),
    currency,
    rollupFoldIntervalMs: integer('ROLLUP_FOLD_INTERVAL_MS', 200, 10, 60_000),
    rollupFoldBatch: integer('ROLLUP_FOLD_BATCH', 20_000, 1, 1_000_000),
    recordsRetentionDays: integer('RECORDS_RETENTION_DAYS', 400, 2, 36_500),
    minuteRollupRetentionDays: integer('MINUTE_ROLLUP_RETENTION_DAYS', 35, 1, 36_500),
    partitionMaintenanceIntervalMs: integer('PARTITION_MAINTENANCE_INTERVAL_MS', 3_600_000, 1000, 86_400_000),
    redisCommandTimeoutMs: integer('REDIS_COMMAND_TIMEOUT_MS', 1000, 50, 60_000),
    databasePoolSize,
    workerDatabasePoolSize: integer('WORKER_DATABASE_POOL_SIZE', 10, 2, 1000),
    reportStatementTimeoutMs: integer('REPORT_STATEMENT_TIMEOUT_MS', 30_000, 1, 3_600_000),
    reportFetchRows: integer('REPORT_FETCH_ROWS', 2000, 1, 1_000_000),
    reportConcurrency,
    reportConcurrencyPerOrg: integer('REPORT_CONCURRENCY_PER_ORG', Math.ceil(reportConcurrency / 2), 1, 1000),
    workerMetricsPort,
    metricsBudgetGauges: boolean('METRICS_BUDGET_GAUGES', false),
    webhookOrgConcurrency: integer('WEBHOOK_ORG_CONCURRENCY', 4, 1, 1000),
  };
  // A budget window's ragged edge (a monthly window in a +05:30 zone starts at 18:30 UTC on the
  // month's last day) is read from the minute rollup or the raw records: one of them must reach
  // back over the longest window, or that edge's spend would silently count as nothing.
  if (Math.max(config.recordsRetentionDays, config.minuteRollupRetentionDays) < LONGEST_WINDOW_DAYS) {
    problems.push(`RECORDS_RETENTION_DAYS or MINUTE_ROLLUP_RETENTION_DAYS must be at least ${LONGEST_WINDOW_DAYS}: budget windows (a month) read the edges of their first day from one of them`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/** A month and the day a window's local start may lie before it in UTC. */
const LONGEST_WINDOW_DAYS = 32;

export function parseSecretsKey(raw: string): Buffer | undefined {
  if (/^[0-9a-fA-F]{64}$/.test(raw)) return Buffer.from(raw, 'hex');
  if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(raw)) {
    const buf = Buffer.from(raw, 'base64');
    if (buf.length === 32) return buf;
  }
  return undefined;
}

/** Nest injection token for the {@link AppConfig}. */
export const APP_CONFIG = Symbol('APP_CONFIG');

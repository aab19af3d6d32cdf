import { ConfigError, loadConfig } from './app-config';

describe('loadConfig', () => {
  it('applies the SPEC §1 defaults', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 3000,
      host: '0.0.0.0',
      databaseUrl: undefined,
      redisUrl: 'redis://127.0.0.1:6379',
      adminApiKey: undefined,
      processRole: 'all',
      webhookAllowPrivateTargets: false,
      secretsKey: undefined,
      alertEvaluationIntervalMs: 5000,
      webhookTimeoutMs: 10_000,
      webhookRetryBaseMs: 15_000,
      webhookMaxAttempts: 20,
    });
    expect(config.dataDir).toMatch(/\.data$/);
  });

  it('reads every variable', () => {
    const config = loadConfig({
      PORT: '8080',
      HOST: '127.0.0.1',
      DATABASE_URL: 'postgres://u:p@db:5432/tally',
      REDIS_URL: 'redis://cache:6380/2',
      ADMIN_API_KEY: 'mk-' + 'a'.repeat(32),
      PROCESS_ROLE: 'worker',
      WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
      SECRETS_KEY: 'ab'.repeat(32),
      ALERT_EVALUATION_INTERVAL_MS: '250',
      WEBHOOK_TIMEOUT_MS: '500',
      WEBHOOK_RETRY_BASE_MS: '20',
      WEBHOOK_MAX_ATTEMPTS: '3',
    });
    expect(config).toMatchObject({
      port: 8080,
      host: '127.0.0.1',
      databaseUrl: 'postgres://u:p@db:5432/tally',
      redisUrl: 'redis://cache:6380/2',
      processRole: 'worker',
      webhookAllowPrivateTargets: true,
      alertEvaluationIntervalMs: 250,
      webhookTimeoutMs: 500,
      webhookRetryBaseMs: 20,
      webhookMaxAttempts: 3,
    });
    expect(config.secretsKey?.length).toBe(32);
  });

  it('reads the storage and scale-out settings (issue 13)', () => {
    expect(loadConfig({})).toMatchObject({ recordsRetentionDays: 400, minuteRollupRetentionDays: 35, redisClusterNodes: undefined, rollupFoldBatch: 20_000 });
    const config = loadConfig({
      RECORDS_RETENTION_DAYS: '90',
      MINUTE_ROLLUP_RETENTION_DAYS: '7',
      REDIS_CLUSTER_NODES: '10.0.0.1:7000, redis-b:7001,[::1]:7002',
      ROLLUP_FOLD_INTERVAL_MS: '50',
    });
    expect(config).toMatchObject({
      recordsRetentionDays: 90,
      minuteRollupRetentionDays: 7,
      rollupFoldIntervalMs: 50,
      redisClusterNodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: 'redis-b', port: 7001 },
        { host: '::1', port: 7002 },
      ],
    });
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.1' })).toThrow('REDIS_CLUSTER_NODES must be host:port pairs');
    expect(() => loadConfig({ RECORDS_RETENTION_DAYS: '0' })).toThrow('RECORDS_RETENTION_DAYS must be an integer');
    expect(() => loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379/abc' })).toThrow('REDIS_URL: its path must be a database index');
    expect(() => loadConfig({ RECORDS_RETENTION_DAYS: '30', MINUTE_ROLLUP_RETENTION_DAYS: '7' })).toThrow('RECORDS_RETENTION_DAYS or MINUTE_ROLLUP_RETENTION_DAYS must be at least 32');
    expect(loadConfig({ RECORDS_RETENTION_DAYS: '2', MINUTE_ROLLUP_RETENTION_DAYS: '32' }).recordsRetentionDays).toBe(2);
    expect(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379/3' }).redisUrl).toBe('redis://127.0.0.1:6379/3');
  });

  it('names every bad variable in one error, without echoing secrets', () => {
    let error: ConfigError | undefined;
    try {
      loadConfig({
        PORT: 'eighty',
        DATABASE_URL: 'mysql://x',
        REDIS_URL: 'http://x',
        ADMIN_API_KEY: 'sk-secret-value',
        PROCESS_ROLE: 'both',
        WEBHOOK_ALLOW_PRIVATE_TARGETS: 'maybe',
        SECRETS_KEY: 'short',
        WEBHOOK_TIMEOUT_MS: '0',
        WEBHOOK_MAX_ATTEMPTS: '100',
      });
    } catch (err) {
      error = err as ConfigError;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect(error!.problems.map((p) => p.split(' ')[0]).sort()).toEqual(
      [
        'ADMIN_API_KEY',
        'DATABASE_URL',
        'PORT',
        'PROCESS_ROLE',
        'REDIS_URL',
        'SECRETS_KEY',
        'WEBHOOK_ALLOW_PRIVATE_TARGETS',
        'WEBHOOK_MAX_ATTEMPTS',
        'WEBHOOK_TIMEOUT_MS',
      ].sort(),
    );
    expect(error!.message).not.toContain('sk-secret-value');
    expect(error!.message).not.toContain('short');
  });

  it('SECRETS_KEY is optional, with DATABASE_URL too (a key is then generated into DATA_DIR: SPEC §1)', () => {
    expect(loadConfig({}).secretsKey).toBeUndefined();
    expect(loadConfig({ DATABASE_URL: 'postgres://u:p@db:5432/tally' }).secretsKey).toBeUndefined();
    expect(loadConfig({ DATABASE_URL: 'postgres://u:p@db:5432/tally', SECRETS_KEY: 'ab'.repeat(32) }).secretsKey?.length).toBe(32);
  });

  it('WORKER_METRICS_PORT: 9464 for a worker, off (the API port serves the metrics) for PROCESS_ROLE=all unless set; 0 is off', () => {
    expect(loadConfig({ PROCESS_ROLE: 'worker' }).workerMetricsPort).toBe(9464);
    expect(loadConfig({}).workerMetricsPort).toBe(0);
    expect(loadConfig({ WORKER_METRICS_PORT: '9100' }).workerMetricsPort).toBe(9100);
    expect(loadConfig({ PROCESS_ROLE: 'worker', WORKER_METRICS_PORT: '0' }).workerMetricsPort).toBe(0);
    expect(() => loadConfig({ WORKER_METRICS_PORT: 'x' })).toThrow(/WORKER_METRICS_PORT must be an integer from 0 to 65535/);
    expect(loadConfig({}).metricsBudgetGauges).toBe(false);
    expect(loadConfig({ METRICS_BUDGET_GAUGES: 'true' }).metricsBudgetGauges).toBe(true);
    expect(loadConfig({}).webhookOrgConcurrency).toBe(4);
  });
});

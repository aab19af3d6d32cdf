import { ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, request, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { HttpClient } from '../harness/http';
import { fmt, Section } from '../harness/report';
import { LatencySummary, round, summarize } from '../harness/stats';
import { ServiceOptions } from '../harness/service';

export interface AlertLatencyMeasurement {
  crossings: number;
  /** From the ingest response that crosses a threshold to the signed webhook arriving, ms. */
  alert: LatencySummary;
  /** The floor: a POST of the same size from this process to the same receiver, ms. */
  post: LatencySummary;
}

/** A loopback receiver noting when each webhook (by the budget id in its body) arrives. */
async function startReceiver(): Promise<{ url: string; arrivals: Map<string, number>; server: Server }> {
  const arrivals = new Map<string, number>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const at = performance.now();
      const match = /"id":"(bud_[A-Za-z0-9]+)"/.exec(Buffer.concat(chunks).toString('utf8'));
      if (match && !arrivals.has(match[1])) arrivals.set(match[1], at);
      res.end('ok');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, arrivals, server };
}

/** A worker process (PROCESS_ROLE=worker) with every alert setting at its default. */
export async function startWorker(options: ServiceOptions, distDir: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [join(distDir, 'src', 'worker.js')], {
    env: {
      ...process.env,
      LOG_LEVEL: 'warn',
      DATABASE_URL: options.databaseUrl,
      REDIS_URL: options.redisUrl,
      REDIS_PREFIX: options.redisPrefix,
      ADMIN_API_KEY: options.adminKey,
      SECRETS_KEY: options.secretsKey,
      WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
      WORKER_METRICS_PORT: '0',
    },
    stdio: 'ignore',
  });
  return child; // ready when the warm-up crossing's webhook arrives
}

/**
 * Part 4: `crossings` budgets, each on its own key with one alert threshold; for each, one ingest
 * that crosses it, timed from the ingest response to the signed webhook reaching a loopback
 * receiver. Baseline in the same run: a plain POST from this process to the same receiver.
 */
export async function measureAlertLatency(opts: {
  admin: HttpClient;
  baseUrl: string;
  ingestKey: string;
  orgId: string;
  service: ServiceOptions;
  distDir: string;
  crossings: number;
  log: (line: string) => void;
}): Promise<AlertLatencyMeasurement> {
  const receiver = await startReceiver();
  const worker = await startWorker(opts.service, opts.distDir);
  const ingest = new HttpClient(opts.baseUrl, opts.ingestKey);
  try {
    const budgets: Array<{ keyId: string; budgetId: string }> = [];
    for (let i = 0; i <= opts.crossings; i++) {
      const key = await opts.admin.json<{ id: string }>('POST', '/api/v1/api-keys', { name: `alert ${i}`, role: 'member', org_id: opts.orgId }, { expect: 201 });
      const budget = await opts.admin.json<{ id: string }>('PUT', `/api/v1/llm/budgets/apikey/${key.id}`, {
        period: 'monthly', limit_kind: 'cost', limit: 1, thresholds: [{ pct: 100, action: 'alert' }], webhook_url: receiver.url,
      });
      budgets.push({ keyId: key.id, budgetId: budget.id });
    }
    const alert: number[] = [];
    // The first crossing warms up (and waits for the worker to boot); it is not counted.
    for (const [i, b] of budgets.entries()) {
      const body = JSON.stringify({ records: [{ id: `alert-latency-${i}`, api_key_id: b.keyId, model: 'bench-model', input_tokens: 10, output_tokens: 10, cost_nano: '1000000000', created_at: Math.floor(Date.now() / 1000) }] });
      const res = await ingest.send('POST', '/api/v1/llm/usage/records', body);
      if (res.status !== 200) throw new Error(`ingest: ${res.status} ${res.text}`);
      const sent = performance.now();
      const deadline = Date.now() + (i === 0 ? 90_000 : 30_000);
      while (!receiver.arrivals.has(b.budgetId)) {
        if (Date.now() > deadline) throw new Error(`no webhook for ${b.budgetId} within 30 s`);
        await new Promise((resolve) => setImmediate(resolve));
      }
      if (i > 0) alert.push(receiver.arrivals.get(b.budgetId)! - sent);
    }
    const post: number[] = [];
    const payload = JSON.stringify({ id: 'alrt_x', type: 'budget.threshold.crossed', data: { pad: 'x'.repeat(1500) } });
    for (let i = 0; i < opts.crossings; i++) {
      const started = performance.now();
      await new Promise<void>((resolve, reject) => {
        const req = request(receiver.url, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
          res.resume();
          res.on('end', () => resolve());
        });
        req.on('error', reject);
        req.end(payload);
      });
      post.push(performance.now() - started);
    }
    const result = { crossings: opts.crossings, alert: summarize(alert), post: summarize(post) };
    opts.log(`  alert p50 ${fmt.ms(result.alert.p50)} ms p99 ${fmt.ms(result.alert.p99)} ms; plain POST p50 ${fmt.ms(result.post.p50)} ms`);
    return result;
  } finally {
    ingest.close();
    worker.kill('SIGTERM');
    receiver.server.close();
  }
}

export function alertLatencySection(m: AlertLatencyMeasurement): Section {
  return {
    id: 'alert-latency',
    title: '4. Alert latency',
    method:
      `${m.crossings} threshold crossings, one at a time: each budget sits on its own key with one alert threshold at 100 %, and one ingest crosses it. ` +
      'Timed from the ingest response to the signed webhook reaching a loopback receiver, with a separate worker process at default settings ' +
      '(ingest enqueues an evaluation of the touched scope; the periodic evaluation runs every 5 s). Baseline in the same run: a plain POST of a similar body from the benchmark process to the same receiver.',
    tables: [
      {
        header: ['', 'p50', 'p99', 'max', 'ratio p50 to the plain POST'],
        rows: [
          ['ingest → webhook', `${fmt.ms(m.alert.p50)} ms`, `${fmt.ms(m.alert.p99)} ms`, `${fmt.ms(m.alert.max)} ms`, `${round(m.alert.p50 / m.post.p50, 1)}×`],
          ['plain POST (floor)', `${fmt.ms(m.post.p50)} ms`, `${fmt.ms(m.post.p99)} ms`, `${fmt.ms(m.post.max)} ms`, '1×'],
        ],
      },
    ],
    goals: [{ goal: `alert p99 over ${m.crossings} crossings < 2 s with default settings`, measured: `${fmt.ms(m.alert.p99)} ms`, pass: m.alert.p99 < 2000 }],
    data: m,
  };
}

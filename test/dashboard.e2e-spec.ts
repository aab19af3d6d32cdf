import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { monthlyBudget, spend } from './helpers/alerts';
import { sampleNames } from './helpers/metrics';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { ingestOk, record } from './helpers/usage';
import { freePort, startReceiver, WebhookReceiver } from './helpers/webhook-receiver';
import { waitFor } from './helpers/wait-for';

interface Panel {
  title?: string;
  type: string;
  targets?: Array<{ expr: string }>;
  panels?: Panel[];
}

const PROMQL_KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'and', 'or', 'unless', 'inf', 'nan']);

/** Every metric name a PromQL expression reads: identifiers that are not functions, keywords, label names or template variables. */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""') // strings
    .replace(/\{[^}]*\}/g, '') // label matchers
    .replace(/\[[^\]]*\]/g, '') // ranges ($__rate_interval)
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ''); // grouping labels
  const names: string[] = [];
  for (const match of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const name = match[0];
    const after = stripped.slice(match.index! + name.length).trimStart();
    if (after.startsWith('(') || PROMQL_KEYWORDS.has(name.toLowerCase())) continue;
    names.push(name);
  }
  return names;
}

const dashboard = JSON.parse(readFileSync(join(__dirname, '..', 'dashboards', 'tally.json'), 'utf8'));
const panels = (list: Panel[]): Panel[] => list.flatMap((p) => [p, ...panels(p.panels ?? [])]);
const queries = panels(dashboard.panels).flatMap((p) => (p.targets ?? []).map((target) => ({ panel: p.title, expr: target.expr })));

describe('the Grafana dashboard (dashboards/tally.json, SPEC §7)', () => {
  let t: TestApp;
  let workerPort: number;
  let hook: WebhookReceiver;

  beforeAll(async () => {
    workerPort = await freePort();
    t = await startTestApp({ METRICS_BUDGET_GAUGES: 'true', WORKER_METRICS_PORT: String(workerPort), ALERT_EVALUATION_INTERVAL_MS: '3600000' });
    hook = await startReceiver();
  });
  afterAll(async () => {
    await hook.close();
    await t.close();
  });

  it('has the panels people look for, each with a query', () => {
    const titles = panels(dashboard.panels).filter((p) => p.type !== 'row').map((p) => p.title);
    for (const title of ['Requests per second, by status', 'Ingest rate', 'Spend by model', 'Budgets nearest their limits', 'Alert delivery outcomes', 'Queue depths']) {
      expect(titles).toContain(title);
    }
    for (const p of panels(dashboard.panels).filter((x) => x.type !== 'row')) expect(p.targets?.length).toBeGreaterThan(0);
  });

  it('reads metric names out of PromQL', () => {
    expect(metricNames('histogram_quantile(0.95, sum by (le, route) (rate(tally_x_bucket{route="/a{b}"}[$__rate_interval])))')).toEqual(['tally_x_bucket']);
    expect(metricNames('topk(10, max by (budget_id) (tally_a)) / on (q) group_left tally_b')).toEqual(['tally_a', 'tally_b']);
  });

  it('every metric its queries use appears in /metrics of a running app (API and worker port)', async () => {
    // Exercise what the panels show: a priced model, ingest, a check, a budget whose alert is delivered.
    const ingestKey = (await createSystemKey(t, 'ingest')).key;
    const org = await seedOrg(t, 'Dashboard');
    await t.put('/api/v1/llm/prices/dashboard-model', { input_per_mtok: '1', cached_input_per_mtok: '1', output_per_mtok: '1' });
    await ingestOk(t, ingestKey, [record(org.member.id, { model: 'dashboard-model', created_at: Math.floor(Date.now() / 1000) })]);
    await t.put(`/api/v1/llm/budgets/org/${org.org.id}`, monthlyBudget(1, { webhook_url: hook.url, thresholds: [{ pct: 50, action: 'alert' }] }));
    await spend(t, ingestKey, org.member.id, 600_000_000n);
    await waitFor(() => hook.requests.length === 1, 'the alert');
    await t.post('/api/v1/llm/budgets/check', { api_key_id: org.member.id }, { key: ingestKey });

    const used = new Map<string, string[]>();
    for (const q of queries) {
      const names = metricNames(q.expr);
      expect(names.length).toBeGreaterThan(0);
      for (const name of names) used.set(name, [...(used.get(name) ?? []), q.panel ?? '']);
    }
    expect([...used.keys()].filter((name) => !name.startsWith('tally_'))).toEqual([]);

    let exposed = new Set<string>();
    await waitFor(async () => {
      const api = (await t.get('/metrics', { key: null })).text;
      const worker = await (await fetch(`http://127.0.0.1:${workerPort}/metrics`)).text();
      exposed = new Set([...sampleNames(api), ...sampleNames(worker)]);
      return [...used.keys()].every((name) => exposed.has(name));
    }, 'every dashboard metric in /metrics').catch(() => undefined);
    const missing = [...used.entries()].filter(([name]) => !exposed.has(name)).map(([name, where]) => `${name} (${where.join(', ')})`);
    expect(missing).toEqual([]);
  });
});

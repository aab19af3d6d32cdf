import { randomBytes } from 'node:crypto';
import { formatReport, main, parseScale } from '../src/cli/demo';
import { DEMO_MODELS, JANUARY_2024 } from '../src/demo/demo-data';
import { DemoAlreadyLoaded, DemoReport, fillDemo } from '../src/demo/fill-demo';
import { rebuildRollups } from '../src/usage/rollup-rebuild';
import { randomAdminKey, startTestApp, TestApp } from './helpers/test-app';
import { createTestDatabase } from './helpers/test-database';
import { DAY, HOUR, query, tableRows } from './helpers/usage';

const ROLLUPS = ['usage_rollups_minute', 'usage_rollups_hour', 'usage_rollups_day'];
const ACME = 'Acme Corp (demo)';

describe('demo data (npm run demo)', () => {
  let t: TestApp;
  let report: DemoReport;
  const keyOf = (name: string) => report.keys.find((k) => k.name === name)!;

  beforeAll(async () => {
    t = await startTestApp();
    report = await fillDemo(t.app, { scale: 0.02, now: Math.floor(Date.now() / 1000), seed: 7 });
  });
  afterAll(() => t.close());

  it('creates a few orgs with keys that work, and stores every generated record', async () => {
    expect(report.orgs.map((o) => o.name)).toEqual([ACME, 'Globex (demo)', 'Initech (demo)']);
    expect(report.keys.map((k) => `${k.name}:${k.role}`)).toEqual(
      expect.arrayContaining(['acme-admin:org_admin', 'acme-search:member', 'globex-admin:org_admin', 'demo-gateway:ingest']),
    );
    const generated = Object.values(report.records).flatMap((byPeriod) => Object.values(byPeriod));
    expect(report.totalRecords).toBe(generated.reduce((a, b) => a + b, 0));
    expect(report.records[ACME]['January 2024']).toBeGreaterThan(500);
    const me = await t.get(`/api/v1/orgs/${report.orgs[0].id}`, { key: keyOf('acme-admin').key });
    expect(me.body).toMatchObject({ name: ACME });
  });

  it('keeps the rollups exactly as a rebuild from the raw records makes them', async () => {
    const kept = await Promise.all(ROLLUPS.map((table) => tableRows(t, table)));
    await rebuildRollups(t.dataSource);
    expect(await Promise.all(ROLLUPS.map((table) => tableRows(t, table)))).toEqual(kept);
  });

  it('fills every day of January 2024 (what Swagger UI\'s pre-filled usage report asks for), with a daily cycle', async () => {
    const acme = keyOf('acme-admin').key;
    const january = { start_time: JANUARY_2024.start, end_time: JANUARY_2024.end };
    const daily = await t.get(`/api/v1/llm/usage/completions?${query({ ...january, bucket_width: '1d', limit: 31 })}`, { key: acme });
    expect(daily.status).toBe(200);
    const requests = daily.body.data.map((b: any) => b.results[0]?.num_model_requests ?? 0);
    expect(requests).toHaveLength(31);
    expect(requests.reduce((a: number, b: number) => a + b, 0)).toBe(report.records[ACME]['January 2024']);
    expect(requests.every((n: number) => n > 0)).toBe(true);

    const hourly = await t.get(`/api/v1/llm/usage/completions?${query({ ...january, bucket_width: '1h', limit: 744 })}`, { key: acme });
    const byHour = new Array(24).fill(0);
    for (const bucket of hourly.body.data) byHour[((bucket.start_time % DAY) / HOUR) | 0] += bucket.results[0]?.num_model_requests ?? 0;
    const afternoon = byHour[14] + byHour[15] + byHour[16];
    const night = byHour[2] + byHour[3] + byHour[4];
    expect(afternoon).toBeGreaterThan(3 * night);
  });

  it('prices skewed model popularity, with one unpriced model listed', async () => {
    const costs = await t.get(`/api/v1/llm/usage/costs?${query({ start_time: JANUARY_2024.start, end_time: JANUARY_2024.end, group_by: 'model' })}`);
    expect(costs.status).toBe(200);
    expect(BigInt(costs.body.total_cost_nano)).toBe(costs.body.data.reduce((sum: bigint, line: any) => sum + BigInt(line.cost_nano), 0n));
    expect(BigInt(costs.body.total_cost_nano)).toBeGreaterThan(0n);
    expect(costs.body.unpriced_models).toEqual(DEMO_MODELS.filter((m) => !m.price).map((m) => m.model));

    const usage = await t.get(
      `/api/v1/llm/usage/completions?${query({ start_time: JANUARY_2024.start, end_time: JANUARY_2024.end, bucket_width: '1d', limit: 31, group_by: 'model' })}`,
    );
    const perModel = new Map<string, number>();
    for (const bucket of usage.body.data) for (const r of bucket.results) perModel.set(r.model, (perModel.get(r.model) ?? 0) + r.num_model_requests);
    const ranked = [...perModel.entries()].sort((a, b) => b[1] - a[1]).map(([model]) => model);
    expect(ranked[0]).toBe(DEMO_MODELS[0].model);
    expect(perModel.get(DEMO_MODELS[0].model)!).toBeGreaterThan(3 * perModel.get(DEMO_MODELS[4].model)!);
  });

  it('sets budgets on live spend, and the check agrees with them', async () => {
    const list = await t.get('/api/v1/llm/budgets');
    expect(list.body.data).toHaveLength(report.budgets.length);
    expect(report.budgets.length).toBe(7);
    const search = report.budgets.find((b) => b.name === 'acme-search')!;
    const budget = (await t.get(`/api/v1/llm/budgets/${search.id}`)).body;
    expect(budget).toMatchObject({ scope: 'apikey', period: 'daily', limit_kind: 'tokens', limit: search.limit });
    const check = await t.post('/api/v1/llm/budgets/check', { api_key_id: keyOf('acme-search').id }, { key: keyOf('demo-gateway').key });
    expect(check.body.allowed).toBe(budget.spend.pct < 100);

    // One team budget, one end-user budget, and budgets in non-UTC zones (SPEC §4.2).
    const team = (await t.get(`/api/v1/llm/budgets/${report.budgets.find((b) => b.name === 'acme/search')!.id}`)).body;
    expect(team).toMatchObject({ scope: 'team', scope_id: 'search', timezone: 'UTC' });
    expect(team.spend.pct).toBeLessThan(100); // sized at 125 % of the team's spend so far this week
    const user = (await t.get(`/api/v1/llm/budgets/${report.budgets.find((b) => b.name === 'acme/acme_user_001')!.id}`)).body;
    expect(user).toMatchObject({ scope: 'user', scope_id: 'acme_user_001', timezone: 'America/New_York' });
    expect(user.spend.window).toMatch(/T00:00:00-0[45]:00\/.*T00:00:00-0[45]:00$/);
    const userCheck = await t.post('/api/v1/llm/budgets/check', { api_key_id: keyOf('acme-support').id, user_id: 'acme_user_001' }, { key: keyOf('demo-gateway').key });
    expect(userCheck.body.blocked_by.some((b: { scope: string }) => b.scope === 'user')).toBe(user.spend.pct >= 100);
    const initech = (await t.get(`/api/v1/llm/budgets/${report.budgets.find((b) => b.name === 'initech')!.id}`)).body;
    expect(initech).toMatchObject({ scope: 'org', timezone: 'Europe/Amsterdam' });
    expect(initech.spend.window).toMatch(/^\d{4}-\d\d-01T00:00:00\+0[12]:00\//);
  });

  it('refuses to load twice, changing nothing', async () => {
    const before = await t.dataSource.query('SELECT count(*)::int AS n FROM completion_records');
    await expect(fillDemo(t.app, { scale: 0.02, now: Math.floor(Date.now() / 1000) })).rejects.toBeInstanceOf(DemoAlreadyLoaded);
    expect(await t.dataSource.query('SELECT count(*)::int AS n FROM completion_records')).toEqual(before);
    expect((await t.dataSource.query(`SELECT count(*)::int AS n FROM orgs WHERE name LIKE '%(demo)'`))[0].n).toBe(3);
  });

  it('prints the demo keys on stdout (progress on stderr), as the command does', () => {
    const text = formatReport(report);
    for (const key of report.keys) expect(text).toContain(`${key.id}  ${key.key}`);
    expect(text).toContain(`Demo data loaded: 3 orgs, 10 API keys, ${report.totalRecords} completion records, 7 budgets.`);
  });
});

describe('the demo command', () => {
  it('parses --scale', () => {
    expect(parseScale([])).toBe(1);
    expect(parseScale(['--scale', '0.5'])).toBe(0.5);
    expect(parseScale(['--scale=2'])).toBe(2);
    expect(() => parseScale(['--scale', 'lots'])).toThrow('--scale must be a number from 0.001 to 20');
  });

  it('prepares the database like npm start, loads, and keeps secrets out of stderr', async () => {
    const db = await createTestDatabase();
    const stdout: string[] = [];
    const stderr: string[] = [];
    try {
      const env = {
        DATABASE_URL: db.url,
        REDIS_URL: process.env.TEST_REDIS_URL,
        REDIS_PREFIX: `test-demo-${randomBytes(4).toString('hex')}`,
        SECRETS_KEY: randomBytes(32).toString('hex'),
        ADMIN_API_KEY: randomAdminKey(),
      };
      const out = await main(['--scale', '0.005'], env, { stdout: { write: (s: string) => stdout.push(s) }, stderr: { write: (s: string) => stderr.push(s) } });
      expect(stdout.join('')).toContain(secretOf(out, 'acme-admin'));
      expect(stderr.join('')).toMatch(/\[#{30}\] 100% (\d+)\/\1 records/);
      for (const key of out.keys) expect(stderr.join('')).not.toContain(key.key);
    } finally {
      await db.drop();
    }
  });
});

function secretOf(report: DemoReport, name: string): string {
  return report.keys.find((k) => k.name === name)!.key;
}

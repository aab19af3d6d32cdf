import { alertRows, settle } from './helpers/alerts';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { ingest, ingestOk, record, T0 } from './helpers/usage';

/**
 * SPEC §4 "Numbers are parsed exactly" and SPEC §3.1: every number a client sends for a limit, a
 * pct, a price or a cost is read from the request's own text, whatever its JSON form. Bodies are
 * sent raw, so the exact lexemes under test reach the server (JSON.stringify would rewrite them).
 */
describe('exact numbers in request bodies', () => {
  let t: TestApp;
  let acme: Awaited<ReturnType<typeof seedOrg>>;
  let ingestKey: string;

  beforeAll(async () => {
    t = await startTestApp();
    acme = await seedOrg(t, 'Acme');
    ingestKey = (await createSystemKey(t, 'ingest')).key;
  });
  afterAll(() => t.close());

  const budgetText = (limit: string, pct: string) =>
    `{"period":"daily","limit_kind":"cost","limit":${limit},"thresholds":[{"pct":${pct},"action":"block"}]}`;
  const putOrgBudget = (orgId: string, text: string, key = acme.orgAdmin.key) =>
    t.request('PUT', `/api/v1/llm/budgets/org/${orgId}`, undefined, { raw: text, key });
  const storedBudgets = (scopeId: string) =>
    t.dataSource.query(`SELECT id, limit_value::text AS limit_value, thresholds::text AS thresholds FROM budgets WHERE scope_id = $1 ORDER BY owner`, [scopeId]);

  describe('budgets: a value not exactly representable under the rules is a 400 naming the field, and nothing is stored', () => {
    it.each([
      ['pct 1.5e-10 (the issue: a 500 that stored the budget)', '100', '1.5e-10', 'thresholds[0].pct', 'at most 6 decimals'],
      ['pct 1e-7', '100', '1e-7', 'thresholds[0].pct', 'at most 6 decimals'],
      ['pct 1.0000001', '100', '1.0000001', 'thresholds[0].pct', 'at most 6 decimals'],
      ['pct 1e400', '100', '1e400', 'thresholds[0].pct', 'not be greater than 1000000000'],
      ['pct 1e-400', '100', '1e-400', 'thresholds[0].pct', 'at most 6 decimals'],
      ['pct 1000000000.000001', '100', '1000000000.000001', 'thresholds[0].pct', 'not be greater than 1000000000'],
      ['pct -0e0', '100', '-0e0', 'thresholds[0].pct', 'greater than 0'],
      ['limit 1e-10', '1e-10', '50', 'limit', 'at most 9 decimals'],
      ['limit 1.5e-10', '1.5e-10', '50', 'limit', 'at most 9 decimals'],
      ['limit 1e400', '1e400', '50', 'limit', 'not be greater than 1000000000000000'],
      ['limit 1.0000000000000001e15', '1.0000000000000001e15', '50', 'limit', 'not be greater than 1000000000000000'],
      ['limit 0.1000000000000000055511151231257827 (JSON.parse reads 0.1)', '0.1000000000000000055511151231257827', '50', 'limit', 'at most 9 decimals'],
      ['limit 0E+5', '0E+5', '50', 'limit', 'greater than 0'],
      ['limit "NaN"', '"NaN"', '50', 'limit', 'must be a number'],
    ])('%s', async (_name, limit, pct, param, message) => {
      const res = await putOrgBudget(acme.org.id, budgetText(limit, pct));
      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({ type: 'invalid_request_error', code: 'validation_failed', param });
      expect(res.body.error.details).toEqual([{ param, message: expect.stringContaining(message) }]);
      expect((await t.get(`/api/v1/llm/budgets/org/${acme.org.id}`, { key: acme.orgAdmin.key })).body.data).toEqual([]);
      expect(await storedBudgets(acme.org.id)).toEqual([]);
    });

    it('a bare NaN is not JSON: 400 invalid_json, nothing stored', async () => {
      const res = await putOrgBudget(acme.org.id, budgetText('NaN', '50'));
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('invalid_json');
      expect(await storedBudgets(acme.org.id)).toEqual([]);
    });

    it('a refused replacement leaves the stored budget as it was, and the operator budget keeps evaluating and blocking', async () => {
      const org = await seedOrg(t, 'Replaced');
      const cluster = await t.put(`/api/v1/llm/budgets/org/${org.org.id}`, {
        period: 'daily',
        limit_kind: 'tokens',
        limit: 100,
        thresholds: [{ pct: 100, action: 'block' }],
        owner: 'cluster',
      });
      expect(cluster.status).toBe(200);
      const own = await putOrgBudget(org.org.id, budgetText('25', '80'), org.orgAdmin.key);
      expect(own.status).toBe(200);
      const before = await storedBudgets(org.org.id);
      for (const text of [budgetText('25', '1.5e-10'), budgetText('1.5e-10', '80'), budgetText('1e400', '80')]) {
        expect((await putOrgBudget(org.org.id, text, org.orgAdmin.key)).status).toBe(400);
      }
      expect(await storedBudgets(org.org.id)).toEqual(before);
      // The issue: after the poisoned PUT, 600 tokens left the operator's 100-token block open.
      const rec = record(org.member.id, { input_tokens: 500, output_tokens: 100, created_at: Math.floor(Date.now() / 1000) - 5 });
      expect((await ingest(t, ingestKey, [rec])).status).toBe(200);
      const check = await t.post('/api/v1/llm/budgets/check', { api_key_id: org.member.id });
      expect(check.body).toMatchObject({ allowed: false, blocked_by: [{ budget_id: cluster.body.id, owner: 'cluster' }] });
      expect((await t.get('/api/v1/llm/budgets')).status).toBe(200);
    });
  });

  describe('budgets: every JSON form of an allowed value is accepted as the exact decimal it denotes', () => {
    it("accepts the seed's SDK example (pct 793338, limit 3281.35) and reads it back exactly", async () => {
      const key = await acme.make('member');
      const text = '{"period":"weekly","limit_kind":"tokens","limit":3281.35,"thresholds":[{"pct":793338,"action":"alert"}]}';
      const res = await t.request('PUT', `/api/v1/llm/budgets/apikey/${key.id}`, undefined, { raw: text, key: acme.orgAdmin.key });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ limit: 3281.35, thresholds: [{ pct: 793338, action: 'alert' }] });
      const again = await t.get(`/api/v1/llm/budgets/${res.body.id}`, { key: acme.orgAdmin.key });
      expect(again.text).toContain('"limit":3281.35,');
      expect(again.text).toContain('"thresholds":[{"pct":793338,"action":"alert"}]');
      expect(await storedBudgets(key.id)).toEqual([
        { id: res.body.id, limit_value: '3281.350000000', thresholds: '[{"pct": 793338, "action": "alert"}]' },
      ]);
    });

    it.each([
      ['1e3', '8e1', 1000, 80],
      ['1.5E2', '1.5E1', 150, 15],
      ['0.1', '0.000001', 0.1, 0.000001],
      ['1E+15', '1e9', 1e15, 1e9],
      ['2500e-3', '999999999.999999', 2.5, 999999999.999999],
      ['0.000000001', '12.5e-1', 0.000000001, 1.25],
    ])('limit %s, pct %s', async (limit, pct, limitValue, pctValue) => {
      const org = await seedOrg(t, `Forms ${limit}`);
      const res = await putOrgBudget(org.org.id, budgetText(limit, pct), org.orgAdmin.key);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ limit: limitValue, thresholds: [{ pct: pctValue, action: 'block' }] });
      const [row] = await storedBudgets(org.org.id);
      expect(Number(row.limit_value)).toBe(limitValue);
      expect(JSON.parse(row.thresholds)).toEqual([{ pct: pctValue, action: 'block' }]);
    });

    it('keeps a 24-significant-digit limit exactly, in PostgreSQL and in every answer', async () => {
      const org = await seedOrg(t, 'Big');
      const res = await putOrgBudget(org.org.id, budgetText('123456789012345.123456789', '33.333333'), org.orgAdmin.key);
      expect(res.status).toBe(200);
      expect(res.text).toContain('"limit":123456789012345.123456789,');
      expect(res.text).toContain('"pct":33.333333');
      const [row] = await storedBudgets(org.org.id);
      expect(row.limit_value).toBe('123456789012345.123456789');
      for (const path of [`/api/v1/llm/budgets/${res.body.id}`, `/api/v1/llm/budgets/org/${org.org.id}`, `/api/v1/llm/budgets?org_id=${org.org.id}`]) {
        const read = await t.get(path);
        expect(read.status).toBe(200);
        expect(read.text).toContain('"limit":123456789012345.123456789,');
      }
    });

    it('alerts at a pct far above 1000: the crossing is stored with its exact pct', async () => {
      const org = await seedOrg(t, 'Huge pct');
      const text = '{"period":"monthly","limit_kind":"tokens","limit":1e-3,"thresholds":[{"pct":793338},{"pct":999999999.999999,"action":"block"}]}';
      const res = await putOrgBudget(org.org.id, text, org.orgAdmin.key);
      expect(res.status).toBe(200);
      const rec = record(org.member.id, { input_tokens: 7000, output_tokens: 934, created_at: Math.floor(Date.now() / 1000) - 5 });
      expect((await ingest(t, ingestKey, [rec])).status).toBe(200); // 7934 tokens of 0.001: 793,400,000 %
      await settle([t.app]);
      expect((await alertRows(t, res.body.id)).map((a) => [a.threshold_pct, a.threshold_action])).toEqual([['793338.000000', 'alert']]);
      const check = await t.post('/api/v1/llm/budgets/check', { api_key_id: org.member.id });
      expect(check.body.allowed).toBe(true); // 793,400,000 % is below the block at 999,999,999.999999 %
    });

    it('treats 80, 8e1 and 80.000 as the same pct: a repeat is refused', async () => {
      const res = await putOrgBudget(acme.org.id, '{"period":"daily","limit_kind":"cost","limit":5,"thresholds":[{"pct":80},{"pct":8e1,"action":"block"}]}');
      expect(res.status).toBe(400);
      expect(res.body.error.param).toBe('thresholds');
    });
  });

  describe('prices', () => {
    const putPrice = (model: string, text: string) => t.request('PUT', `/api/v1/llm/prices/${model}`, undefined, { raw: text });

    it('accepts exponent forms as the exact decimals they denote', async () => {
      const res = await putPrice('exp-model', '{"input_per_mtok":2.5e0,"cached_input_per_mtok":125E-2,"output_per_mtok":1e1,"effective_from":1.7040672e9}');
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ input_per_mtok: '2.5', cached_input_per_mtok: '1.25', output_per_mtok: '10', effective_from: 1704067200 });
      const digits = await putPrice('digits-model', '{"input_per_mtok":123456.123456789,"cached_input_per_mtok":"0.000000001","output_per_mtok":999999.999999999}');
      expect(digits.status).toBe(200);
      expect(digits.body).toMatchObject({ input_per_mtok: '123456.123456789', cached_input_per_mtok: '0.000000001', output_per_mtok: '999999.999999999' });
    });

    it.each([
      ['1.5e-10', 'at most 9 decimals'],
      ['1e400', 'not be greater than 1000000'],
      ['0.1000000000000000055511151231257827', 'at most 9 decimals'],
      ['-1e0', 'must not be negative'],
      ['"1e3"', 'must be a decimal number'],
    ])('refuses input_per_mtok %s, naming it, and stores nothing', async (value, message) => {
      const res = await putPrice('bad-model', `{"input_per_mtok":${value},"cached_input_per_mtok":1,"output_per_mtok":1}`);
      expect(res.status).toBe(400);
      expect(res.body.error.details).toEqual([{ param: 'input_per_mtok', message: expect.stringContaining(message) }]);
      expect((await t.get('/api/v1/llm/prices/bad-model')).status).toBe(404);
    });
  });

  describe('ingest: cost_nano and token counts', () => {
    const ingestText = (fields: string) => {
      const base = record(acme.member.id, { created_at: T0 });
      const text = JSON.stringify({ records: [base] }).replace(/}]}$/, `,${fields}}]}`);
      return { id: base.id, send: () => t.request('POST', '/api/v1/llm/usage/records', undefined, { raw: text, key: ingestKey }) };
    };
    const storedCost = async (id: string) =>
      (await t.dataSource.query(`SELECT cost_nano::text AS cost_nano, input_tokens::text AS input_tokens FROM completion_records WHERE id = $1`, [id]))[0];

    it.each([
      ['"cost_nano":5.25e6', '5250000'],
      ['"cost_nano":9007199254740993', '9007199254740993'],
      ['"cost_nano":9.2233720368547758E17', '922337203685477580'],
      ['"cost_nano":"18446744"', '18446744'],
    ])('stores %s exactly', async (fields, expected) => {
      const r = ingestText(fields);
      expect((await r.send()).status).toBe(200);
      expect((await storedCost(r.id)).cost_nano).toBe(expected);
    });

    it('writes token sums past 2^53 in usage reports with every digit (a double would round 9007199254740993 down)', async () => {
      const org = await seedOrg(t, 'BigSums');
      const at = Math.floor(Date.now() / 1000) - 60;
      await ingestOk(t, ingestKey, [
        record(org.member.id, { input_tokens: Number.MAX_SAFE_INTEGER, output_tokens: 0, created_at: at }),
        record(org.member.id, { input_tokens: 2, output_tokens: 5, created_at: at }),
      ]);
      for (const path of ['/api/v1/llm/usage/completions', '/v1/organization/usage/completions']) {
        const res = await t.get(`${path}?start_time=${at - 3600}&bucket_width=1d`, { key: org.orgAdmin.key });
        expect(res.status).toBe(200);
        expect(res.text).toContain('"input_tokens":9007199254740993,');
        expect(res.text).toContain('"output_tokens":5,');
      }
    });

    it('reads input_tokens 1e3 as 1000', async () => {
      const r = ingestText('"input_tokens":1e3');
      const res = await r.send();
      expect(res.status).toBe(200);
      expect((await storedCost(r.id)).input_tokens).toBe('1000');
    });

    it.each([
      ['"cost_nano":1e-3', 'records[0].cost_nano', 'must be an integer'],
      ['"cost_nano":1e400', 'records[0].cost_nano', 'not be greater than 9223372036854775807'],
      ['"cost_nano":9223372036854775808', 'records[0].cost_nano', 'not be greater than 9223372036854775807'],
      ['"cost_nano":5250000.0000000001', 'records[0].cost_nano', 'must be an integer'],
      ['"input_tokens":1.0000000000000001', 'records[0].input_tokens', 'integer'],
      ['"input_tokens":9007199254740993', 'records[0].input_tokens', 'integer'],
      ['"output_tokens":2.5e0', 'records[0].output_tokens', 'integer'],
    ])('refuses %s, naming the field, and stores nothing', async (fields, param, message) => {
      const r = ingestText(fields);
      const res = await r.send();
      expect(res.status).toBe(400);
      expect(res.body.error.details).toEqual(expect.arrayContaining([{ param, message: expect.stringContaining(message) }]));
      expect(await storedCost(r.id)).toBeUndefined();
    });
  });
});

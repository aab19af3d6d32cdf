import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { DAY, ingestOk, record, T0 } from './helpers/usage';

const MODEL = 'meetkai:functionary-urdu-mini-pak';

describe('price book (SPEC §3.1)', () => {
  let t: TestApp;
  let acme: Awaited<ReturnType<typeof seedOrg>>;
  let ingestKey: { id: string; key: string };

  beforeAll(async () => {
    t = await startTestApp();
    acme = await seedOrg(t, 'Acme');
    ingestKey = await createSystemKey(t, 'ingest');
  });
  afterAll(() => t.close());

  const put = (model: string, body: unknown, key?: string) => t.put(`/api/v1/llm/prices/${encodeURIComponent(model)}`, body, { key });

  it('adds price versions from decimal strings or numbers, exactly', async () => {
    const res = await put(MODEL, { input_per_mtok: '2.50', cached_input_per_mtok: '1.25', output_per_mtok: '10.00', effective_from: T0 });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      object: 'llm.price',
      model: MODEL,
      input_per_mtok: '2.5',
      cached_input_per_mtok: '1.25',
      output_per_mtok: '10',
      effective_from: T0,
      created_at: expect.any(Number),
    });
    const second = await put(MODEL, { input_per_mtok: 3, cached_input_per_mtok: 1e-7, output_per_mtok: 0.1, effective_from: T0 + DAY });
    expect(second.status).toBe(200);
    expect(second.body).toMatchObject({ input_per_mtok: '3', cached_input_per_mtok: '0.0000001', output_per_mtok: '0.1' });
    const [row] = await t.dataSource.query(
      'SELECT input_per_mtok_nano, cached_input_per_mtok_nano, output_per_mtok_nano FROM model_prices WHERE model = $1 AND effective_from = $2',
      [MODEL, new Date((T0 + DAY) * 1000)],
    );
    expect(row).toEqual({ input_per_mtok_nano: '3000000000', cached_input_per_mtok_nano: '100', output_per_mtok_nano: '100000000' });
  });

  it('reads a model with its current version and history, and lists every model', async () => {
    const res = await t.get(`/api/v1/llm/prices/${encodeURIComponent(MODEL)}`, { key: acme.member.key });
    expect(res.status).toBe(200);
    expect(res.body.object).toBe('llm.model_price');
    expect(res.body.current).toMatchObject({ effective_from: T0 + DAY, input_per_mtok: '3' });
    expect(res.body.versions.map((v: { effective_from: number }) => v.effective_from)).toEqual([T0 + DAY, T0]);

    const future = Math.floor(Date.now() / 1000) + 10 * DAY;
    expect((await put('gpt/future', { input_per_mtok: '1', cached_input_per_mtok: '1', output_per_mtok: '1', effective_from: future })).status).toBe(200);
    const list = await t.get('/api/v1/llm/prices', { key: ingestKey.key });
    expect(list.status).toBe(200);
    expect(list.body.object).toBe('list');
    expect(list.body.data.map((m: { model: string }) => m.model)).toEqual(['gpt/future', MODEL]);
    expect(list.body.data[0].current).toBeNull(); // not in force yet

    const missing = await t.get('/api/v1/llm/prices/nope', { key: acme.member.key });
    expect(missing.status).toBe(404);
    expect(missing.body.error).toEqual({ message: "Price for model 'nope' not found", type: 'not_found_error', code: 'not_found', param: null });
  });

  it('replaces the version with the same effective_from', async () => {
    await put('replace-me', { input_per_mtok: '1', cached_input_per_mtok: '1', output_per_mtok: '1', effective_from: T0 });
    await put('replace-me', { input_per_mtok: '2', cached_input_per_mtok: '2', output_per_mtok: '2', effective_from: T0 });
    const res = await t.get('/api/v1/llm/prices/replace-me');
    expect(res.body.versions).toHaveLength(1);
    expect(res.body.current.input_per_mtok).toBe('2');
  });

  it('names every bad field of a price', async () => {
    const res = await put(MODEL, { input_per_mtok: '-1', cached_input_per_mtok: '0.0000000001', output_per_mtok: 2000000, effective_from: 'soon', extra: 1 });
    expect(res.status).toBe(400);
    expect(res.body.error.details).toEqual([
      { param: 'extra', message: 'is not a known field' },
      { param: 'input_per_mtok', message: 'must not be negative' },
      { param: 'cached_input_per_mtok', message: 'must have at most 9 decimals' },
      { param: 'output_per_mtok', message: 'must not be greater than 1000000' },
      { param: 'effective_from', message: expect.stringContaining('must be an integer number') },
    ]);
    expect((await put('has space', { input_per_mtok: '1', cached_input_per_mtok: '1', output_per_mtok: '1' })).body.error.param).toBe('model');
    expect((await put(MODEL, {})).body.error.details.map((d: { param: string }) => d.param)).toEqual([
      'input_per_mtok',
      'cached_input_per_mtok',
      'output_per_mtok',
    ]);
  });

  it('lets only cluster admins write prices', async () => {
    for (const key of [acme.member.key, acme.orgAdmin.key, ingestKey.key]) {
      expect((await put(MODEL, { input_per_mtok: '1', cached_input_per_mtok: '1', output_per_mtok: '1' }, key)).status).toBe(403);
    }
  });

  it('prices each record by the version in force at its created_at, and flags unpriced ones', async () => {
    const at = (created_at: number, extra = {}) =>
      record(acme.member.id, { created_at, input_tokens: 1_000_000, input_cached_tokens: 200_000, output_tokens: 333_333, ...extra });
    const records = [
      at(T0 - 1), // before the first version: unpriced
      at(T0), // first version, from its first second
      at(T0 + DAY - 1),
      at(T0 + DAY), // second version
      at(T0 + DAY, { model: 'no-price-model' }),
      at(T0 + DAY, { cost_nano: '17' }), // sent costs win
      at(T0, { input_tokens: 1, input_cached_tokens: 0, output_tokens: 0, model: 'tiny' }),
      at(T0, { input_tokens: 3, input_cached_tokens: 0, output_tokens: 0, model: 'tiny' }),
    ];
    // 0.5 nano per token: 1 token → 0.5 → 1 (half up); 3 tokens → 1.5 → 2.
    expect((await put('tiny', { input_per_mtok: '0.0005', cached_input_per_mtok: '0', output_per_mtok: '0', effective_from: T0 })).status).toBe(200);
    await ingestOk(t, ingestKey.key, records);
    const rows = await t.dataSource.query(
      'SELECT id, cost_nano, unpriced FROM completion_records WHERE id = ANY($1)',
      [records.map((r) => r.id)],
    );
    const byId = new Map(rows.map((r: { id: string }) => [r.id, r]));
    const v1 = (800_000n * 2_500_000_000n + 200_000n * 1_250_000_000n + 333_333n * 10_000_000_000n + 500_000n) / 1_000_000n;
    const v2 = (800_000n * 3_000_000_000n + 200_000n * 100n + 333_333n * 100_000_000n + 500_000n) / 1_000_000n;
    expect(records.map((r) => byId.get(r.id))).toEqual([
      { id: records[0].id, cost_nano: '0', unpriced: true },
      { id: records[1].id, cost_nano: v1.toString(), unpriced: false },
      { id: records[2].id, cost_nano: v1.toString(), unpriced: false },
      { id: records[3].id, cost_nano: v2.toString(), unpriced: false },
      { id: records[4].id, cost_nano: '0', unpriced: true },
      { id: records[5].id, cost_nano: '17', unpriced: false },
      { id: records[6].id, cost_nano: '1', unpriced: false },
      { id: records[7].id, cost_nano: '2', unpriced: false },
    ]);
    expect(v1).toBe(5_583_330_000n); // 2 + 0.25 + 3.33333 major units
  });
});

import { Client } from 'pg';
import { sample } from './helpers/metrics';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { DAY, HOUR, ingestOk, query, record, T0 } from './helpers/usage';
import { waitFor } from './helpers/wait-for';

const PATH = '/api/v1/llm/usage/costs';

interface CostsBody {
  data: Array<{ model: string | null; cost_nano: string }>;
  has_more: boolean;
  total_cost_nano: string;
  unpriced_models: string[];
}

/**
 * One costs response reads its lines, its total and its unpriced models in one snapshot (SPEC §8:
 * a record counts from the moment its ingest returns, and never twice, within one response too):
 * with every line on one page, the lines add up to the total, and every unpriced model is a line.
 */
describe('GET /api/v1/llm/usage/costs reads one snapshot', () => {
  let t: TestApp;
  let acme: Awaited<ReturnType<typeof seedOrg>>;
  let ingestKey: string;

  beforeAll(async () => {
    t = await startTestApp();
    acme = await seedOrg(t, 'Acme');
    ingestKey = (await createSystemKey(t, 'ingest')).key;
    await ingestOk(t, ingestKey, [
      record(acme.member.id, { model: 'model-a', cost_nano: '1000', user_id: 'user_1', created_at: T0 + HOUR }),
      record(acme.member.id, { model: 'model-b', cost_nano: '20000', created_at: T0 + 2 * HOUR }),
      record(acme.member.id, { model: 'unpriced-0', created_at: T0 + 3 * HOUR }),
    ]);
  });
  afterAll(() => t.close());

  const costs = async (groupBy: string[]): Promise<CostsBody> => {
    const res = await t.get(`${PATH}?${query({ start_time: T0, end_time: T0 + DAY, group_by: groupBy, limit: 10000 })}`, { key: acme.orgAdmin.key });
    if (res.status !== 200) throw new Error(`${res.status} ${res.text}`);
    return res.body;
  };

  /** What must hold of every response whose lines are all on one page and grouped by model. */
  const expectConsistent = (body: CostsBody) => {
    expect(body.has_more).toBe(false);
    const sum = body.data.reduce((s, line) => s + BigInt(line.cost_nano), 0n);
    expect({ sum: sum.toString(), unpricedWithoutLine: body.unpriced_models.filter((m) => !body.data.some((line) => line.model === m)) }).toEqual({
      sum: body.total_cost_nano,
      unpricedWithoutLine: [],
    });
  };

  it('agrees with itself when a record is ingested between its statements', async () => {
    // Grouped by end user, the lines come from the per-user daily rollup; the total and the
    // unpriced models (no end user) from the per-key one, which this session locks: their reading
    // waits for it once the lines are read, and the records below are ingested meanwhile.
    const locker = new Client({ connectionString: t.db.url });
    await locker.connect();
    const fetches = async () => sample((await t.get('/metrics', { key: null })).text, 'tally_report_fetches_total') ?? 0;
    try {
      const before = await fetches();
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE usage_rollups_day_by_key IN ACCESS EXCLUSIVE MODE');
      const response = costs(['model', 'external_user_id']);
      await waitFor(async () => {
        const waiting = await locker.query(`SELECT count(*)::int AS n FROM pg_locks WHERE relation = 'usage_rollups_day_by_key'::regclass AND NOT granted`);
        const n: number = waiting.rows[0].n;
        return n > 0 && (await fetches()) > before;
      }, 'the lines to be read and a statement to wait for the lock');
      await ingestOk(t, ingestKey, [
        record(acme.member.id, { model: 'model-a', cost_nano: '300', user_id: 'user_2', created_at: T0 + 4 * HOUR }),
        record(acme.member.id, { model: 'unpriced-1', user_id: 'user_2', created_at: T0 + 4 * HOUR }),
      ]);
      await locker.query('ROLLBACK');
      expectConsistent(await response);
    } finally {
      await locker.end();
    }
    const after = await costs(['model', 'external_user_id']);
    expectConsistent(after);
    expect(after.total_cost_nano).toBe('21300');
    expect(after.unpriced_models).toEqual(['unpriced-0', 'unpriced-1']);
  });

  it('agrees with itself in every response while records are ingested', async () => {
    let writing = true;
    let batches = 0;
    const writer = (async () => {
      while (writing) {
        batches += 1;
        await ingestOk(t, ingestKey, [
          ...['model-a', 'model-b', 'model-c'].map((model, i) =>
            record(acme.member.id, { model, cost_nano: String(batches * 10 + i + 1), created_at: T0 + ((batches * 7 + i) % 24) * HOUR }),
          ),
          record(acme.member.id, { model: `unpriced-w${batches}`, created_at: T0 + 5 * HOUR }),
        ]);
      }
    })();
    try {
      for (let i = 0; i < 150; i++) expectConsistent(await costs(['model']));
    } finally {
      writing = false;
      await writer;
    }
    expect(batches).toBeGreaterThan(10);
  });
});

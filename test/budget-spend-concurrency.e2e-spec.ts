import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { ingest, record } from './helpers/usage';
import { prng } from './helpers/usage-random';

const CLIENTS = 8;

/** Budget spend under concurrent retries: every record sent 3 times by 8 clients, in random order. */
describe('budget spend under concurrent overlapping ingest', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t.close());

  it('equals the unique records exactly, for key and org budgets, and the check agrees', async () => {
    const org = await seedOrg(t, 'Spendy');
    const other = await org.make('member');
    const ingestKeys = [await createSystemKey(t, 'ingest'), await createSystemKey(t, 'ingest')];
    const rand = prng(42);
    const now = Math.floor(Date.now() / 1000);
    const unique = Array.from({ length: 600 }, (_, i) =>
      record(i % 3 === 0 ? other.id : org.member.id, {
        id: `spend-${i}`,
        created_at: now - Math.floor(rand() * 60),
        input_tokens: 1 + Math.floor(rand() * 5000),
        output_tokens: Math.floor(rand() * 2000),
        cost_nano: String(1 + Math.floor(rand() * 3_000_000_000)),
      }),
    );
    const costOf = (keyId?: string) => unique.filter((r) => !keyId || r.api_key_id === keyId).reduce((sum, r) => sum + BigInt(r.cost_nano as string), 0n);
    const tokensOf = (keyId?: string) => unique.filter((r) => !keyId || r.api_key_id === keyId).reduce((sum, r) => sum + BigInt(r.input_tokens + r.output_tokens), 0n);
    // Limits at exactly the total spend: both budgets must end blocked, not one nano before.
    const keyBudget = await t.put(`/api/v1/llm/budgets/apikey/${org.member.id}`, {
      period: 'daily', limit_kind: 'cost', limit: Number(costOf(org.member.id)) / 1e9, thresholds: [{ pct: 100, action: 'block' }],
    });
    const orgBudget = await t.put(`/api/v1/llm/budgets/org/${org.org.id}`, {
      period: 'daily', limit_kind: 'tokens', limit: Number(tokensOf()), thresholds: [{ pct: 100, action: 'block' }],
    });
    expect([keyBudget.status, orgBudget.status]).toEqual([200, 200]);

    const shares: Array<typeof unique> = Array.from({ length: CLIENTS }, () => []);
    for (const r of unique) {
      const clients = new Set<number>();
      while (clients.size < 3) clients.add(Math.floor(rand() * CLIENTS));
      for (const c of clients) shares[c].push(r);
    }
    for (const share of shares) share.sort(() => rand() - 0.5);
    const totals = await Promise.all(
      shares.map(async (share, client) => {
        let accepted = 0;
        for (let i = 0; i < share.length; i += 40) {
          const res = await ingest(t, ingestKeys[client % 2].key, share.slice(i, i + 40));
          if (res.status !== 200) throw new Error(`${res.status} ${res.text}`);
          accepted += res.body.accepted;
        }
        return accepted;
      }),
    );
    expect(totals.reduce((a, b) => a + b, 0)).toBe(unique.length);

    const key = (await t.get(`/api/v1/llm/budgets/${keyBudget.body.id}`)).body;
    expect(key.spend.cost_spent_nano).toBe(costOf(org.member.id).toString());
    const whole = (await t.get(`/api/v1/llm/budgets/${orgBudget.body.id}`)).body;
    expect(whole.spend.tokens_spent).toBe(tokensOf().toString());
    expect(whole.spend.cost_spent_nano).toBe(costOf().toString());
    // The Redis state the check reads was refreshed by the last ingest: both budgets block.
    const check = await t.post('/api/v1/llm/budgets/check', { api_key_id: org.member.id }, { key: ingestKeys[0].key });
    expect(check.body.blocked_by.map((b: { budget_id: string }) => b.budget_id).sort()).toEqual([keyBudget.body.id, orgBudget.body.id].sort());
  });
});

import { DAY, ingestOk, record } from './helpers/usage';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { prng } from './helpers/usage-random';
import { KeyedSpendQuery, SPEND_BATCH, UsageSpendService } from '../src/usage/usage-spend.service';

/**
 * Spend of many (org, window) pairs at once (what every budget evaluation reads): whole-day
 * windows share statements of up to SPEND_BATCH pairs, other windows are read one by one. Over
 * more than two statements' worth of pairs, with every kind of key filter and windows of both
 * kinds interleaved, each answer must equal a plain GROUP BY over the records of its own pair,
 * records on every window's first second and the second before it included.
 */
describe('spend of many (org, window) pairs in one read', () => {
  let t: TestApp;
  let orgs: Array<{ id: string; keys: string[] }>;
  const today = Math.floor(Date.now() / 1000 / DAY) * DAY;

  beforeAll(async () => {
    t = await startTestApp();
    const ingestKey = (await createSystemKey(t, 'ingest')).key;
    const rand = prng(77);
    orgs = [];
    for (const name of ['spend-a', 'spend-b']) {
      const org = await seedOrg(t, `${name}-${Math.random()}`);
      const keys = [org.member.id, (await org.make('member')).id, (await org.make('member')).id];
      orgs.push({ id: org.org.id, keys });
      // 600 records over the last 9 days (and today), some on each key; part stays in the journal.
      const records = Array.from({ length: 600 }, (_v, i) =>
        record(keys[i % 3], {
          created_at: Math.floor(Date.now() / 1000) - Math.floor(rand() * 9 * DAY),
          input_tokens: 1 + Math.floor(rand() * 1000),
          output_tokens: Math.floor(rand() * 1000),
          cost_nano: String(Math.floor(rand() * 1e12)),
        }),
      );
      // And on every window's edges: each midnight and one hour after it (where the ragged windows
      // start), and the second before each, on every key.
      const edges = Array.from({ length: 8 }, (_v, d) => today - d * DAY).flatMap((midnight) => [midnight, midnight - 1, midnight + 3600, midnight + 3599]);
      for (const [e, at] of edges.entries()) {
        for (const [k, key] of keys.entries()) records.push(record(key, { created_at: at, input_tokens: 1 + e, output_tokens: k, cost_nano: String(1000 * (e + 1) + k) }));
      }
      for (let i = 0; i < records.length; i += 200) await ingestOk(t, ingestKey, records.slice(i, i + 200));
    }
  });
  afterAll(() => t.close());

  it('answers each pair as its own GROUP BY would, across statements and window kinds', async () => {
    const queries: KeyedSpendQuery[] = [];
    for (let i = 0; queries.length < 2 * SPEND_BATCH + 203; i++) {
      const org = orgs[i % 2];
      const days = 1 + (i % 7);
      // Every third window starts an hour after midnight (a local day somewhere): read on its own.
      const from = new Date(((today - (days - 1) * DAY) + (i % 3 === 0 ? 3600 : 0)) * 1000);
      const to = new Date((today + DAY) * 1000);
      const apiKeyIds = [undefined, [org.keys[0]], [org.keys[1], org.keys[2], org.keys[1]], ['key_unknown'], []][i % 5];
      queries.push({ orgId: org.id, from, to, apiKeyIds });
    }
    const answers = await t.app.get(UsageSpendService).spendByKeys(queries, 3);
    expect(answers).toHaveLength(queries.length);

    const plain = async ({ orgId, from, to, apiKeyIds }: KeyedSpendQuery) => {
      const rows: Array<{ api_key_id: string; c: string; t: string }> = await t.dataSource.query(
        `SELECT api_key_id, SUM(cost_nano)::text AS c, SUM(input_tokens + output_tokens)::text AS t FROM completion_records
         WHERE org_id = $1 AND created_at >= $2 AND created_at < $3 AND ($4::varchar[] IS NULL OR api_key_id = ANY($4)) GROUP BY api_key_id`,
        [orgId, from, to, apiKeyIds ?? null],
      );
      return rows;
    };
    let nonEmpty = 0;
    for (const [i, q] of queries.entries()) {
      const rows = await plain(q);
      const expected = Object.fromEntries(rows.map((r) => [r.api_key_id, `${r.c}/${r.t}`]));
      const got = Object.fromEntries([...answers[i].byKey].map(([key, s]) => [key, `${s.costNano}/${s.tokens}`]));
      expect({ i, spend: got }).toEqual({ i, spend: expected });
      const total = rows.reduce((sum, r) => sum + BigInt(r.c), 0n);
      expect({ i, total: answers[i].total.costNano }).toEqual({ i, total });
      if (rows.length > 0) nonEmpty++;
    }
    // Most pairs have spend: the comparison is not between empty answers.
    expect(nonEmpty).toBeGreaterThan(queries.length / 2);
  });

  it("one row whose input and output tokens each come near 2^63 reads exactly, and fails no other org's read", async () => {
    const ingestKey = (await createSystemKey(t, 'ingest')).key;
    const big = await seedOrg(t, `spend-big-${Math.random()}`);
    const at = Math.floor(Date.now() / 1000) - 30;
    // 1,000 records of 2^53 − 1 each way in one minute: one journal row near 9.007e18 per measure.
    const max = Number.MAX_SAFE_INTEGER;
    await ingestOk(t, ingestKey, Array.from({ length: 1000 }, () => record(big.member.id, { created_at: at, input_tokens: max, output_tokens: max })));
    const reads = await t.app.get(UsageSpendService).spendByKeys([
      { orgId: big.org.id, from: new Date((today - DAY) * 1000), to: new Date((today + DAY) * 1000) },
      { orgId: orgs[0].id, from: new Date((today - DAY) * 1000), to: new Date((today + DAY) * 1000) },
    ]);
    expect(reads[0].total.tokens).toBe(BigInt(max) * 2000n);
    expect(reads[1].total.tokens).toBeGreaterThan(0n);
  });
});

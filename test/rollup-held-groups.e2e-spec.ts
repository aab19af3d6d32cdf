import { foldBatch, foldOnce, JOURNAL_TABLE } from '../src/usage/rollup-journal';
import { holdOverflowingGroups } from '../src/usage/rollup-held-groups';
import { ensurePartitions } from '../src/usage/partitions';
import { HELD_DELTAS_TABLE, HELD_GROUPS_TABLE } from '../src/usage/pending-deltas';
import { HELD_RELEASE_INTERVAL_MS, RollupOverflowHolds } from '../src/usage/rollup-overflow-holds';
import { rebuildRollups } from '../src/usage/rollup-rebuild';
import { ROLLUPS } from '../src/usage/rollups';
import { UsageSpendService } from '../src/usage/usage-spend.service';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { DAY, ingestOk, query, record, T0 } from './helpers/usage';
import { waitFor } from './helpers/wait-for';

/**
 * SPEC §8: a rollup group (an org's UTC day, key, team, model, project, batch and tier) whose sums
 * would overflow a bigint is held: its deltas go into usage_rollup_deltas_held instead of the
 * rollups, every other group (of that org too) folds, every folder knows it from the table, reads
 * count the held rows exactly, and the group is released once its sums fit again.
 */
const MAX_BIGINT = '9223372036854775807';
const M = 'meetkai:functionary-urdu-mini-pak';
const metric = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
const countBy = async (t: TestApp, table: string) =>
  Object.fromEntries(
    (await t.dataSource.query(`SELECT org_id, count(*)::int AS n FROM ${table} GROUP BY org_id`)).map((r: { org_id: string; n: number }) => [r.org_id, r.n]),
  );
const heldGroups = async (t: TestApp) =>
  (await t.dataSource.query(`SELECT org_id, bucket_start, api_key_id, model FROM ${HELD_GROUPS_TABLE} ORDER BY 1, 2, 3, 4`)).map(
    (r: { org_id: string; bucket_start: Date; api_key_id: string; model: string }) => [r.org_id, r.bucket_start.toISOString(), r.api_key_id, r.model],
  );
/** Records folded into the per-key daily rollup, per org. */
const foldedByOrg = async (t: TestApp) =>
  Object.fromEntries(
    (await t.dataSource.query(`SELECT org_id, SUM(num_model_requests)::int AS n FROM usage_rollups_day_by_key GROUP BY org_id`)).map(
      (r: { org_id: string; n: number }) => [r.org_id, r.n],
    ),
  );
const dayCost = async (t: TestApp, orgId: string, keyId: string, model: string) =>
  (
    await t.dataSource.query(`SELECT cost_nano FROM usage_rollups_day_by_key WHERE org_id = $1 AND api_key_id = $2 AND model = $3 AND bucket_start = $4`, [
      orgId,
      keyId,
      model,
      new Date(T0 * 1000),
    ])
  )[0]?.cost_nano;

type Org = Awaited<ReturnType<typeof seedOrg>>;
const line = (keyId: string, model: string) => `${keyId} ${model}`;

/** What the records say, per key and model, over [T0, T0 + DAY): the reference for every read. */
async function fromRecords(t: TestApp, orgId: string) {
  const rows: Array<{ api_key_id: string; model: string; n: number; cost: string }> = await t.dataSource.query(
    `SELECT api_key_id, model, count(*)::int AS n, SUM(cost_nano)::text AS cost FROM completion_records
     WHERE org_id = $1 AND created_at >= $2 AND created_at < $3 GROUP BY 1, 2`,
    [orgId, new Date(T0 * 1000), new Date((T0 + DAY) * 1000)],
  );
  return {
    requests: Object.fromEntries(rows.map((r) => [line(r.api_key_id, r.model), r.n])),
    costs: Object.fromEntries(rows.map((r) => [line(r.api_key_id, r.model), r.cost])),
    byKey: rows.reduce<Record<string, bigint>>((acc, r) => ({ ...acc, [r.api_key_id]: (acc[r.api_key_id] ?? 0n) + BigInt(r.cost) }), {}),
  };
}

/**
 * The completions and costs reports (a whole day, from the daily rollup; and from T0 + 30 s, from
 * the minute and hour rollups) and the budget spend (per key, a whole day and a ragged window),
 * each compared with the records.
 */
async function expectReadsExact(t: TestApp, org: Org): Promise<void> {
  const expected = await fromRecords(t, org.org.id);
  for (const start of [T0, T0 + 30]) {
    const range = { start_time: start, end_time: T0 + DAY, group_by: ['api_key_id', 'model'] };
    const completions = await t.get(`/api/v1/llm/usage/completions?${query({ ...range, bucket_width: '1d' })}`, { key: org.orgAdmin.key });
    expect(completions.status).toBe(200);
    const requests = Object.fromEntries(
      completions.body.data.flatMap((b: { results: Array<{ api_key_id: string; model: string; num_model_requests: number }> }) =>
        b.results.map((r) => [line(r.api_key_id, r.model), r.num_model_requests]),
      ),
    );
    expect(requests).toEqual(expected.requests);
    const costs = await t.get(`/api/v1/llm/usage/costs?${query(range)}`, { key: org.orgAdmin.key });
    expect(costs.status).toBe(200);
    expect(Object.fromEntries(costs.body.data.map((r: { api_key_id: string; model: string; cost_nano: string }) => [line(r.api_key_id, r.model), r.cost_nano]))).toEqual(
      expected.costs,
    );
  }
  const spend = t.app.get(UsageSpendService);
  for (const [from, to] of [
    [T0, T0 + DAY],
    [T0 + 30, T0 + DAY - 30],
  ]) {
    const { byKey } = (await spend.spendByKeys([{ orgId: org.org.id, from: new Date(from * 1000), to: new Date(to * 1000) }]))[0];
    expect(Object.fromEntries([...byKey].map(([key, s]) => [key, s.costNano]))).toEqual(expected.byKey);
  }
}

describe('held rollup groups: a group whose sums overflow a bigint is held, not its org', () => {
  it("holds the one group: the org's other keys and models fold, and so do other orgs; reads stay exact; logged once and counted", async () => {
    const api = await startTestApp({ PROCESS_ROLE: 'api' });
    let worker: TestApp | undefined;
    try {
      const big = await seedOrg(api, 'Big');
      const acme = await seedOrg(api, 'Acme');
      const bigKey2 = await big.make('member');
      const ingestKey = (await createSystemKey(api, 'ingest')).key;
      // Each record fits a bigint, and so does each journal row (two batches, two minutes), but
      // not their sum in the hour's and the day's rollup rows: folding them overflows.
      await ingestOk(api, ingestKey, [record(big.member.id, { cost_nano: MAX_BIGINT, created_at: T0 + 60 })]);
      await ingestOk(api, ingestKey, [record(big.member.id, { cost_nano: MAX_BIGINT, created_at: T0 + 120 })]);
      // The same org's other groups: another model of the key, another key of the model.
      await ingestOk(api, ingestKey, [
        record(big.member.id, { model: 'other-model', cost_nano: 7, created_at: T0 + 180 }),
        record(bigKey2.id, { cost_nano: 11, created_at: T0 + 240 }),
        record(acme.member.id, { cost_nano: 13, created_at: T0 + 180 }),
        record(acme.member.id, { cost_nano: 17, created_at: T0 + 240 }),
      ]);

      worker = await startTestApp({ PROCESS_ROLE: 'all', ROLLUP_FOLD_INTERVAL_MS: '20' }, { database: api.db });
      await waitFor(async () => Object.keys(await countBy(api, JOURNAL_TABLE)).length === 0, 'the journal to drain');
      expect(await heldGroups(api)).toEqual([[big.org.id, new Date(T0 * 1000).toISOString(), big.member.id, M]]);
      expect(await countBy(api, HELD_DELTAS_TABLE)).toEqual({ [big.org.id]: 2 });
      expect(await foldedByOrg(api)).toEqual({ [big.org.id]: 2, [acme.org.id]: 2 });
      const held = async () => metric((await worker!.get('/metrics', { key: null })).text, 'tally_rollup_fold_held_groups');
      expect(await held()).toBe(1);
      await expectReadsExact(api, big);

      // The folder goes on: the held group's next delta is held too, everything else folds.
      await ingestOk(api, ingestKey, [
        record(big.member.id, { cost_nano: 5, created_at: T0 + 300 }),
        record(big.member.id, { model: 'other-model', cost_nano: 3, created_at: T0 + 360 }),
        record(acme.member.id, { created_at: T0 + 420 }),
      ]);
      await waitFor(async () => (await foldedByOrg(api))[acme.org.id] === 3 && (await foldedByOrg(api))[big.org.id] === 3, 'the next deltas to be folded');
      expect(await countBy(api, JOURNAL_TABLE)).toEqual({});
      expect(await countBy(api, HELD_DELTAS_TABLE)).toEqual({ [big.org.id]: 3 });
      expect(await held()).toBe(1);
      await expectReadsExact(api, big);
      await expectReadsExact(api, acme);

      const errors = worker.logs.filter((l) => l.includes('"level":"error"'));
      expect(errors).toHaveLength(1);
      for (const part of [`"orgId":"${big.org.id}"`, `"apiKeyId":"${big.member.id}"`, `"model":"${M}"`, '"day":"2024-01-01"', '"measures":["cost_nano"]']) {
        expect(errors[0]).toContain(part);
      }
      expect(errors[0]).not.toContain(big.member.key);
    } finally {
      await worker?.close();
      await api.close();
    }
  });

  it('a second folder diverts a held group it never saw overflow, without failing first, and reads no held row', async () => {
    const t = await startTestApp({ PROCESS_ROLE: 'api' });
    try {
      const big = await seedOrg(t, 'Big');
      const acme = await seedOrg(t, 'Acme');
      const ingestKey = (await createSystemKey(t, 'ingest')).key;
      // Two folders on one database, as two worker processes: no state shared but the tables.
      const first = new RollupOverflowHolds(t.dataSource);
      const second = new RollupOverflowHolds(t.dataSource);
      await ingestOk(t, ingestKey, [record(big.member.id, { cost_nano: MAX_BIGINT, created_at: T0 + 60 })]);
      expect(await first.fold(1000, new Date(0))).toMatchObject({ deltas: 1, held: 0 });
      await ingestOk(t, ingestKey, [record(big.member.id, { cost_nano: MAX_BIGINT, created_at: T0 + 120 })]);
      expect(await first.fold(1000, new Date(0))).toMatchObject({ deltas: 0, held: 1 });

      // Any cost now overflows the group's rollup rows. Had the second folder folded it and failed,
      // it would find no group to hold newly (this one is held) and throw.
      await ingestOk(t, ingestKey, [record(big.member.id, { cost_nano: 1, created_at: T0 + 180 }), record(acme.member.id, { created_at: T0 + 180 })]);
      expect(await second.fold(1000, new Date(0))).toMatchObject({ deltas: 1, held: 1 });
      expect(await countBy(t, JOURNAL_TABLE)).toEqual({});
      expect(await countBy(t, HELD_DELTAS_TABLE)).toEqual({ [big.org.id]: 2 });

      // A fold with held groups reads the groups, never the held rows: the held rows' table
      // counts, read in the fold's transaction before and after it (nothing is flushed meanwhile),
      // show the row it diverted and no scan.
      await ingestOk(t, ingestKey, [record(big.member.id, { cost_nano: 1, created_at: T0 + 240 })]);
      const runner = t.dataSource.createQueryRunner();
      await runner.startTransaction();
      try {
        const stats = async () =>
          (
            await runner.query(
              `SELECT COALESCE(seq_scan, 0)::int AS seq, COALESCE(idx_scan, 0)::int AS idx, n_tup_ins::int AS inserted FROM pg_stat_xact_user_tables WHERE relname = $1`,
              [HELD_DELTAS_TABLE],
            )
          )[0];
        const before = await stats();
        expect(await foldOnce(runner, 1000)).toMatchObject({ deltas: 0, held: 1 });
        const after = await stats();
        expect({ seq: after.seq - before.seq, idx: after.idx - before.idx, inserted: after.inserted - before.inserted }).toEqual({ seq: 0, idx: 0, inserted: 1 });
        await runner.commitTransaction();
      } finally {
        if (runner.isTransactionActive) await runner.rollbackTransaction();
        await runner.release();
      }
      expect(await countBy(t, HELD_DELTAS_TABLE)).toEqual({ [big.org.id]: 3 });
      await expectReadsExact(t, big);
    } finally {
      await t.close();
    }
  });

  it('releases a held group once its sums fit again: its held rows go back to the journal and fold', async () => {
    const t = await startTestApp({ PROCESS_ROLE: 'api' });
    const now = Date.now.bind(Date);
    try {
      const big = await seedOrg(t, 'Big');
      const ingestKey = (await createSystemKey(t, 'ingest')).key;
      const folds = new RollupOverflowHolds(t.dataSource);
      await ingestOk(t, ingestKey, [record(big.member.id, { cost_nano: MAX_BIGINT, created_at: T0 + 60 })]);
      await folds.fold(1000, new Date(0));
      await ingestOk(t, ingestKey, [record(big.member.id, { cost_nano: MAX_BIGINT, created_at: T0 + 120 })]);
      expect(await folds.fold(1000, new Date(0))).toMatchObject({ deltas: 0, held: 1 });
      // Still overflowing: a release keeps it.
      expect(await folds.releaseFitting(new Date(0))).toEqual([]);
      expect(await heldGroups(t)).toHaveLength(1);

      // The first record's cost is corrected in every rollup (by hand, as an operator would).
      for (const r of ROLLUPS) await t.dataSource.query(`UPDATE ${r.table} SET cost_nano = 0 WHERE org_id = $1`, [big.org.id]);
      // Not before the interval: the next fold leaves it held.
      expect(await folds.fold(1000, new Date(0))).toMatchObject({ deltas: 0, held: 0 });
      expect(await heldGroups(t)).toHaveLength(1);
      jest.spyOn(Date, 'now').mockImplementation(() => now() + HELD_RELEASE_INTERVAL_MS);
      // A fold starts the release beside it (not awaited); it takes the fold lock when no fold holds it.
      await folds.fold(1000, new Date(0));
      await folds.settled();
      if ((await heldGroups(t)).length > 0) expect(await folds.releaseFitting(new Date(0))).toHaveLength(1);
      expect(await folds.fold(1000, new Date(0))).toMatchObject({ deltas: 1, held: 0 });
      expect(await heldGroups(t)).toEqual([]);
      expect(await countBy(t, HELD_DELTAS_TABLE)).toEqual({});
      expect(await countBy(t, JOURNAL_TABLE)).toEqual({});
      expect(await dayCost(t, big.org.id, big.member.id, M)).toBe(MAX_BIGINT);
    } finally {
      jest.restoreAllMocks();
      await t.close();
    }
  });

  it('an overflowing pair that arrives while a fold holds groups does not fail that fold: it folds the rows it chose', async () => {
    const t = await startTestApp({ PROCESS_ROLE: 'api' });
    try {
      const big = await seedOrg(t, 'Big');
      const calm = await seedOrg(t, 'Calm');
      const ingestKey = (await createSystemKey(t, 'ingest')).key;
      const overflowingPair = async (model: string) => {
        for (const at of [T0 + 60, T0 + 120]) await ingestOk(t, ingestKey, [record(big.member.id, { model, cost_nano: MAX_BIGINT, created_at: at })]);
      };
      await overflowingPair('first');
      await ingestOk(t, ingestKey, [record(calm.member.id, { created_at: T0 + 90 })]);
      // The minute partition is there already: a fold that makes one starts over (another test's matter).
      await ensurePartitions(t.dataSource, 'usage_rollups_minute', [T0]);
      let arrivals = 0;
      // Every hold, a new overflowing pair arrives before the fold runs again (another connection, committed).
      const result = await foldBatch(t.dataSource, 1000, new Date(0), async (runner, ctids) => {
        const held = await holdOverflowingGroups(runner, new Date(0), ctids);
        arrivals += 1;
        await overflowingPair(`later-${arrivals}`);
        return held.length;
      });
      expect(arrivals).toBe(1);
      expect(result).toMatchObject({ deltas: 1, held: 2, locked: true });
      expect(await foldedByOrg(t)).toEqual({ [calm.org.id]: 1 });
      expect(await countBy(t, JOURNAL_TABLE)).toEqual({ [big.org.id]: 2 }); // the later pair, for the next fold
    } finally {
      await t.close();
    }
  });

  it('a rollup rebuild drops the held rows and held groups of the days it recomputes from the records', async () => {
    const t = await startTestApp({ PROCESS_ROLE: 'api' });
    try {
      const big = await seedOrg(t, 'Big');
      const ingestKey = (await createSystemKey(t, 'ingest')).key;
      const folds = new RollupOverflowHolds(t.dataSource);
      const bogus = record(big.member.id, { cost_nano: MAX_BIGINT, created_at: T0 + 60 });
      await ingestOk(t, ingestKey, [bogus]);
      await folds.fold(1000, new Date(0));
      await ingestOk(t, ingestKey, [record(big.member.id, { cost_nano: MAX_BIGINT, created_at: T0 + 120 }), record(big.member.id, { cost_nano: 9, created_at: T0 + DAY })]);
      expect(await folds.fold(1000, new Date(0))).toMatchObject({ deltas: 1, held: 1 });

      // The bogus record is deleted and the rollups rebuilt: the day's rows are recomputed from
      // the records, and its held row (a record the rebuild counts) must not be counted again.
      await t.dataSource.query(`DELETE FROM completion_records WHERE org_id = $1 AND id = $2`, [big.org.id, bogus.id]);
      await rebuildRollups(t.dataSource);
      expect(await heldGroups(t)).toEqual([]);
      expect(await countBy(t, HELD_DELTAS_TABLE)).toEqual({});
      expect(await dayCost(t, big.org.id, big.member.id, M)).toBe(MAX_BIGINT);
      await expectReadsExact(t, big);

      // A day whose records themselves overflow is left as it was (its group stays held) and
      // counted, and the rebuild goes on to the next days.
      await ingestOk(t, ingestKey, [record(big.member.id, { cost_nano: MAX_BIGINT, created_at: T0 + 180 })]);
      await folds.fold(1000, new Date(0));
      expect(await heldGroups(t)).toHaveLength(1);
      const totals = await rebuildRollups(t.dataSource);
      expect(totals.skipped).toBe(1);
      expect(totals.days).toBeGreaterThanOrEqual(1); // T0 + DAY, after it
      expect(await heldGroups(t)).toHaveLength(1);
      await expectReadsExact(t, big);
    } finally {
      await t.close();
    }
  });
});

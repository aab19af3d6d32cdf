import { Client } from 'pg';
import { main, progressBar } from '../src/cli/rebuild-rollups';
import { FOLD_LOCK_CLASS, FOLD_LOCK_KEY, JOURNAL_TABLE } from '../src/usage/rollup-journal';
import { waitFor } from './helpers/wait-for';
import { ensurePartitions } from '../src/usage/partitions';

import { ROLLUPS } from '../src/usage/rollups';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { DAY, HOUR, ingestOk, T0, tableRows } from './helpers/usage';
import { prng, randomRecords } from './helpers/usage-random';

const TABLES = ROLLUPS.map((r) => r.table);

describe('rollup rebuild command (npm run rollups:rebuild)', () => {
  let t: TestApp;
  let acme: Awaited<ReturnType<typeof seedOrg>>;
  let globex: Awaited<ReturnType<typeof seedOrg>>;

  beforeAll(async () => {
    // The background folder stays idle after start-up: the tests fold (tableRows) or leave deltas pending themselves.
    t = await startTestApp({ ROLLUP_FOLD_INTERVAL_MS: '60000' });
    acme = await seedOrg(t, 'Acme', 'team-a');
    globex = await seedOrg(t, 'Globex');
    const ingestKey = await createSystemKey(t, 'ingest');
    await t.put('/api/v1/llm/prices/model-b', { input_per_mtok: '0.15', cached_input_per_mtok: '0.075', output_per_mtok: '0.6', effective_from: T0 });
    const rand = prng(42);
    const records = randomRecords(rand, [acme.member.id, acme.orgAdmin.id, globex.member.id], 1500, T0, 4, 'rebuild');
    for (let i = 0; i < records.length; i += 500) await ingestOk(t, ingestKey.key, records.slice(i, i + 500));
  });
  afterAll(() => t.close());

  const snapshot = async () => Promise.all(TABLES.map((table) => tableRows(t, table)));
  const run = async () => {
    const lines: string[] = [];
    const totals = await main(
      { DATABASE_URL: t.db.url, RECORDS_RETENTION_DAYS: '36500', MINUTE_ROLLUP_RETENTION_DAYS: '36500' },
      { write: (s: string) => lines.push(s) },
    );
    return { totals, output: lines.join('') };
  };

  it('rebuilds rollups identical to the ones kept at ingest, from the raw records', async () => {
    const kept = await snapshot();
    expect(kept[0].length).toBeGreaterThan(1000);
    // Damage every table in a different way.
    await t.dataSource.query(`DELETE FROM usage_rollups_minute WHERE bucket_start < $1`, [new Date((T0 + DAY) * 1000)]);
    await t.dataSource.query(`UPDATE usage_rollups_hour SET input_tokens = input_tokens + 1, cost_nano = 0 WHERE org_id = $1`, [acme.org.id]);
    await t.dataSource.query(`DELETE FROM usage_rollups_day WHERE org_id = $1`, [globex.org.id]);
    await t.dataSource.query(`UPDATE usage_rollups_day_by_key SET num_model_requests = 0 WHERE org_id = $1`, [acme.org.id]);
    await t.dataSource.query(`DELETE FROM usage_rollups_hour_by_key WHERE bucket_start >= $1`, [new Date((T0 + 2 * DAY) * 1000)]);
    await t.dataSource.query(
      `INSERT INTO usage_rollups_day (org_id, bucket_start, api_key_id, team_id, user_id, model, project_id, batch, service_tier, num_model_requests)
       VALUES ($1, $2, 'key_ghost', '', '', 'ghost', '', false, '', 5)`,
      [acme.org.id, new Date((T0 + 30 * DAY) * 1000)],
    );
    // A day without records, in a month the records table still holds: its rows are stale.
    await ensurePartitions(t.dataSource, 'usage_rollups_minute', [T0 + 29 * DAY + HOUR]);
    await t.dataSource.query(
      `INSERT INTO usage_rollups_minute (org_id, bucket_start, api_key_id, team_id, user_id, model, project_id, batch, service_tier, num_model_requests)
       VALUES ($1, $2, 'key_ghost', '', '', 'ghost', '', false, '', 5)`,
      [globex.org.id, new Date((T0 + 29 * DAY + HOUR) * 1000)],
    );
    expect(await snapshot()).not.toEqual(kept);

    const { totals, output } = await run();
    expect(await snapshot()).toEqual(kept);
    // 4 days of records per org, plus one ghost day each.
    const rows = Object.fromEntries(ROLLUPS.map((r, i) => [r.name, kept[i].length]));
    expect(totals).toEqual({ orgs: 2, days: 5 + 5, skipped: 0, records: 1500, rows });
    expect(output).toContain('[------------------------------]   0% 0/10 org-days');
    expect(output).toContain('[##############################] 100% 10/10 org-days');
    expect(output).toMatch(new RegExp(`Rebuilt rollups of 1500 records: 2 orgs, 10 org-days; rows: ${kept[0].length} per-minute`));
  });

  it('is idempotent', async () => {
    const before = await snapshot();
    const { totals } = await run();
    expect(totals.days).toBe(8); // the ghost days are gone
    expect(await snapshot()).toEqual(before);
  });

  it('counts pending journal deltas once: the rebuild drops the ones of the days it recomputes', async () => {
    const before = await snapshot();
    // Journal rows that no fold has moved yet (put back by hand, as an ingest leaves them).
    await t.dataSource.query(
      `INSERT INTO ${JOURNAL_TABLE} (org_id, bucket_start, api_key_id, team_id, user_id, model, project_id, batch, service_tier,
         input_tokens, output_tokens, input_cached_tokens, input_audio_tokens, output_audio_tokens, num_model_requests, cost_nano, unpriced_requests)
       SELECT org_id, bucket_start, api_key_id, team_id, user_id, model, project_id, batch, service_tier,
         input_tokens, output_tokens, input_cached_tokens, input_audio_tokens, output_audio_tokens, num_model_requests, cost_nano, unpriced_requests
       FROM usage_rollups_minute WHERE org_id = $1`,
      [acme.org.id],
    );
    expect((await t.dataSource.query(`SELECT count(*)::int AS n FROM ${JOURNAL_TABLE}`))[0].n).toBeGreaterThan(0);
    await run();
    expect((await t.dataSource.query(`SELECT count(*)::int AS n FROM ${JOURNAL_TABLE}`))[0].n).toBe(0);
    expect(await snapshot()).toEqual(before);
  });

  it('draws the bar in place on a terminal', () => {
    const writes: string[] = [];
    const bar = progressBar({ isTTY: true, write: (s: string) => writes.push(s) });
    bar({ done: 1, total: 4, orgId: 'org_a' });
    bar({ done: 4, total: 4, orgId: 'org_a' });
    expect(writes).toEqual([
      '\r[########----------------------]  25% 1/4 org-days  org_a\x1b[K',
      '\r[##############################] 100% 4/4 org-days  org_a\x1b[K\n',
    ]);
  });

  it("leaves a day whose records' partition is gone as it was: its hourly and daily rows are the only copy left", async () => {
    const ingestKey = await createSystemKey(t, 'ingest');
    const june = Date.UTC(2023, 5, 15, 12) / 1000;
    await ingestOk(t, ingestKey.key, [
      { id: `rebuild-gone-${Date.now()}`, api_key_id: globex.member.id, model: 'model-b', input_tokens: 1000, output_tokens: 10, created_at: june },
    ]);
    const dayRows = async () => (await tableRows(t, 'usage_rollups_day')).filter((r) => r.bucket_start === new Date(Date.UTC(2023, 5, 15) * 1).toISOString());
    const before = await dayRows();
    expect(before).toHaveLength(1);
    expect(before[0].input_tokens).toBe('1000');
    // What the worker does past RECORDS_RETENTION_DAYS (here the command is not told of that retention).
    await t.dataSource.query('ALTER TABLE completion_records DETACH PARTITION completion_records_p202306');
    await t.dataSource.query('DROP TABLE completion_records_p202306');
    const { totals, output } = await run();
    expect(totals.skipped).toBe(1);
    expect(output).toContain("1 org-days left as they were: their records' partition is gone, or their sums overflow a bigint");
    expect(await dayRows()).toEqual(before);
    expect((await tableRows(t, 'usage_rollups_hour')).filter((r) => String(r.bucket_start).startsWith('2023-06-15'))).toHaveLength(1);
  });

  it("a partition drop waits for the day being rebuilt: the rebuild's lock stops DETACH … CONCURRENTLY", async () => {
    const ingestKey = await createSystemKey(t, 'ingest');
    const july = Date.UTC(2023, 6, 15, 12) / 1000;
    await ingestOk(t, ingestKey.key, [{ id: `rebuild-lock-${Date.now()}`, api_key_id: globex.member.id, model: 'model-b', input_tokens: 700, output_tokens: 1, created_at: july }]);
    await tableRows(t, 'usage_rollups_day'); // folded
    // The fold lock, held elsewhere: every day of the rebuild waits for it, its partition locked.
    const holder = new Client({ connectionString: t.db.url });
    const detacher = new Client({ connectionString: t.db.url });
    await holder.connect();
    await detacher.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT pg_advisory_xact_lock($1, $2)', [FOLD_LOCK_CLASS, FOLD_LOCK_KEY]);
      const rebuilt = run();
      // Once some day of the rebuild waits for the fold lock, holding its month's partition.
      await waitFor(async () => (await t.dataSource.query(`SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname ~ '^completion_records_p' AND l.mode = 'ShareUpdateExclusiveLock' AND l.granted`)).length > 0, 'the rebuild to lock a partition');
      const [locked] = await t.dataSource.query(`SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname ~ '^completion_records_p' AND l.mode = 'ShareUpdateExclusiveLock' AND l.granted`);
      await detacher.query("SET lock_timeout = '300ms'");
      await expect(detacher.query(`ALTER TABLE completion_records DETACH PARTITION ${locked.relname} CONCURRENTLY`)).rejects.toThrow(/lock timeout/);
      await holder.query('COMMIT');
      await rebuilt;
      const [attached] = await t.dataSource.query(`SELECT count(*)::int AS n FROM pg_inherits WHERE inhrelid = $1::regclass AND NOT inhdetachpending`, [locked.relname]);
      expect(attached.n).toBe(1);
    } finally {
      await holder.end();
      await detacher.end();
    }
  });

  it('needs DATABASE_URL', async () => {
    await expect(main({}, { write: () => undefined })).rejects.toThrow('Set DATABASE_URL');
  });
});

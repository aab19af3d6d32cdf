import { IngestRecordDto } from '../src/usage/dto/ingest.dto';
import { UsageIngestService } from '../src/usage/usage-ingest.service';
import { UsageSpendService } from '../src/usage/usage-spend.service';
import { foldBatch } from '../src/usage/rollup-journal';
import { ensurePartitions, listPartitions, maintainPartitions, monthsBetween, PARTITION_CREATE_LOCK_CLASS } from '../src/usage/partitions';
import { DAY, HOUR } from '../src/usage/time-buckets';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { ingest, ingestOk, query, record, RecordBody } from './helpers/usage';
import { waitFor } from './helpers/wait-for';

/**
 * SPEC §8 bounded storage: records kept RECORDS_RETENTION_DAYS and the per-minute rollup
 * MINUTE_ROLLUP_RETENTION_DAYS in monthly partitions; what is past them is refused with a 400 that
 * says so; dropping partitions under ingest loses no accepted record inside retention.
 */
const RECORDS_DAYS = 60;
const MINUTE_DAYS = 10;

describe('retention of records and per-minute rollups (monthly partitions)', () => {
  let t: TestApp;
  let acme: Awaited<ReturnType<typeof seedOrg>>;
  let ingestKey: string;
  const now = Math.floor(Date.now() / 1000);

  beforeAll(async () => {
    t = await startTestApp({ PROCESS_ROLE: 'api', RECORDS_RETENTION_DAYS: String(RECORDS_DAYS), MINUTE_ROLLUP_RETENTION_DAYS: String(MINUTE_DAYS) });
    acme = await seedOrg(t);
    ingestKey = (await createSystemKey(t, 'ingest')).key;
  });
  afterAll(() => t.close());

  const usage = (params: Record<string, string | number>) => t.get(`/api/v1/llm/usage/completions?${query(params)}`);
  const requests = (body: { data: Array<{ results: Array<{ num_model_requests: number }> }> }) =>
    body.data.reduce((n, b) => n + b.results.reduce((s, r) => s + r.num_model_requests, 0), 0);

  it('refuses records older than the record retention, naming the setting, and writes nothing', async () => {
    const res = await ingest(t, ingestKey, [record(acme.member.id, { created_at: now - HOUR }), record(acme.member.id, { created_at: now - RECORDS_DAYS * DAY - 60 })]);
    expect(res.status).toBe(400);
    expect(res.body.error.details).toEqual([{ param: 'records[1].created_at', message: `is older than the record retention of ${RECORDS_DAYS} days (RECORDS_RETENTION_DAYS)` }]);
    expect((await t.dataSource.query('SELECT count(*)::int AS n FROM completion_records'))[0].n).toBe(0);
  });

  it('applies the record retention to every ingest path, not only the HTTP body (e.g. OTLP spans)', async () => {
    const service = t.app.get(UsageIngestService);
    const old = record(acme.member.id, { created_at: now - RECORDS_DAYS * DAY - 60 }) as unknown as IngestRecordDto;
    await expect(service.ingest([record(acme.member.id, { created_at: now - HOUR }) as unknown as IngestRecordDto, old])).rejects.toMatchObject({
      details: [{ param: 'records[1].created_at', message: `is older than the record retention of ${RECORDS_DAYS} days (RECORDS_RETENTION_DAYS)` }],
    });
  });

  it('keeps (org, id) idempotent across partitions: an id stored in one month is a duplicate in another', async () => {
    const first = record(acme.member.id, { created_at: now - 40 * DAY });
    expect(await ingestOk(t, ingestKey, [first])).toMatchObject({ accepted: 1, duplicates: 0 });
    expect(await ingestOk(t, ingestKey, [{ ...first, created_at: now - HOUR }, first])).toMatchObject({ accepted: 0, duplicates: 2 });
    const rows = await t.dataSource.query('SELECT created_at FROM completion_records WHERE id = $1', [first.id]);
    expect(rows).toEqual([{ created_at: new Date((now - 40 * DAY) * 1000) }]);
  });

  it('refuses 1m reports older than the minute retention, and sub-hour edges older than the record retention', async () => {
    const oldMinute = await usage({ start_time: now - (MINUTE_DAYS + 1) * DAY, end_time: now - MINUTE_DAYS * DAY, bucket_width: '1m' });
    expect(oldMinute.status).toBe(400);
    expect(oldMinute.body.error).toMatchObject({ param: 'start_time', message: expect.stringContaining('MINUTE_ROLLUP_RETENTION_DAYS') });
    const hourAligned = Math.floor((now - (RECORDS_DAYS + 5) * DAY) / HOUR) * HOUR;
    const ragged = await usage({ start_time: hourAligned + 30, end_time: now, bucket_width: '1d', limit: 100 });
    expect(ragged.status).toBe(400);
    expect(ragged.body.error).toMatchObject({ param: 'start_time', message: expect.stringContaining('RECORDS_RETENTION_DAYS') });
    expect((await usage({ start_time: hourAligned, end_time: now, bucket_width: '1d', limit: 100 })).status).toBe(200);
  });

  it('answers ragged minutes past the minute retention from the raw records, exactly', async () => {
    const at = Math.floor((now - 20 * DAY) / 60) * 60;
    await ingestOk(t, ingestKey, [
      record(acme.member.id, { created_at: at + 10 }),
      record(acme.member.id, { created_at: at + 70 }),
      record(acme.member.id, { created_at: at + 130 }),
      record(acme.member.id, { created_at: at + HOUR + 5 }),
    ]);
    // [at + 5, at + HOUR + 200): a raw edge, minutes (from raw: past the minute retention), then an hour-aligned part.
    const res = await usage({ start_time: at + 5, end_time: at + HOUR + 200, bucket_width: '1d' });
    expect(res.status).toBe(200);
    expect(requests(res.body)).toBe(4);
    const inner = await usage({ start_time: at + 60, end_time: at + 120, bucket_width: '1h' });
    expect(requests(inner.body)).toBe(1);
  });

  it('reads budget spend over minutes past the minute retention from the raw records, folded or not', async () => {
    const org = await seedOrg(t, 'SpendPastMinutes');
    // A window starting on a half hour (a +05:30 zone's day starts so), 20 days back: its first
    // half hour is minutes the per-minute rollup no longer keeps.
    const from = Math.floor((now - 20 * DAY) / HOUR) * HOUR + 30 * 60;
    await ingestOk(t, ingestKey, [record(org.member.id, { created_at: from + 10 * 60, cost_nano: '1000' }), record(org.member.id, { created_at: from + HOUR, cost_nano: '7' })]);
    const spend = () => t.app.get(UsageSpendService).spend({ orgId: org.org.id }, new Date(from * 1000), new Date((from + 2 * HOUR) * 1000));
    expect(await spend()).toEqual({ costNano: 1007n, tokens: 250n });
    // What the worker's folder does: deltas past the minute retention go to the hours and days only.
    const folded = await foldBatch(t.dataSource, 100_000, new Date((now - (MINUTE_DAYS + 1) * DAY) * 1000));
    expect(folded.deltas).toBeGreaterThanOrEqual(2);
    expect((await spend()).costNano).toBe(1007n);
  });

  it('an ensure call for a month whose partition is there waits for the lock of its creator, so the caller\'s next statement routes to it', async () => {
    const name = `completion_records_p${new Date(monthsBetween(now, now)[0] * 1000).toISOString().slice(0, 7).replace('-', '')}`;
    expect((await listPartitions(t.dataSource, 'completion_records')).map((p) => p.name)).toContain(name);
    // A creator still committing: it holds the month's lock until its invalidations are sent.
    const creator = t.dataSource.createQueryRunner();
    await creator.startTransaction();
    try {
      await creator.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [PARTITION_CREATE_LOCK_CLASS, name]);
      let returned = false;
      const ensuring = ensurePartitions(t.dataSource, 'completion_records', [now]).finally(() => (returned = true));
      await waitFor(
        async () =>
          (await t.dataSource.query(`SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'advisory' AND query LIKE '%tally_ensure_partitions%'`)).length > 0,
        'the ensure call to wait for the lock',
      );
      expect(returned).toBe(false);
      await creator.commitTransaction();
      expect(await ensuring).toBe(0);
    } finally {
      if (creator.isTransactionActive) await creator.rollbackTransaction();
      await creator.release();
    }
  });

  it('drops whole months past retention under ingest, losing no accepted record inside it; makes months ahead', async () => {
    // Rows past retention, as an older deployment left them (ingest refuses such records now).
    const oldTimes = [now - 150 * DAY, now - 120 * DAY, now - (RECORDS_DAYS + 35) * DAY];
    for (const [i, at] of oldTimes.entries()) {
      await t.dataSource.query(`SELECT tally_ensure_partitions('completion_records', ARRAY[$1::timestamptz])`, [new Date(at * 1000)]);
      await t.dataSource.query(`SELECT tally_ensure_partitions('usage_rollups_minute', ARRAY[$1::timestamptz])`, [new Date(at * 1000)]);
      await t.dataSource.query(
        `INSERT INTO completion_records (org_id, id, api_key_id, model, input_tokens, output_tokens, input_cached_tokens, input_audio_tokens,
           output_audio_tokens, batch, cost_nano, unpriced, created_at) VALUES ($1, $2, $3, 'm', 1, 1, 0, 0, 0, false, 0, false, $4)`,
        [acme.org.id, `old-${i}`, acme.member.id, new Date(at * 1000)],
      );
      await t.dataSource.query(
        `INSERT INTO usage_rollups_minute (org_id, bucket_start, api_key_id, team_id, user_id, model, project_id, batch, service_tier, num_model_requests)
         VALUES ($1, $2, $3, '', '', 'm', '', false, '', 1)`,
        [acme.org.id, new Date(Math.floor(at / 60) * 60 * 1000), acme.member.id],
      );
    }
    const recordsCutoff = now - RECORDS_DAYS * DAY;
    const minuteCutoff = now - MINUTE_DAYS * DAY;
    const expectedDrops = (table: string, cutoff: number) =>
      listPartitions(t.dataSource, table as never).then((ps) => ps.filter((p) => p.end <= cutoff).map((p) => p.name));
    // The per-minute rollup keeps a day more than its retention (the folder still writes that far back).
    const doomed = [...(await expectedDrops('completion_records', recordsCutoff)), ...(await expectedDrops('usage_rollups_minute', minuteCutoff - DAY))];
    expect(doomed.length).toBeGreaterThanOrEqual(3);

    // 4 clients ingest records spread over the whole retention (the oldest months included) while partitions are dropped.
    const before = (await t.dataSource.query('SELECT count(*)::int AS n FROM completion_records WHERE created_at >= $1', [new Date(recordsCutoff * 1000)]))[0].n;
    let accepted = 0;
    let stop = false;
    const maintenance = (async () => {
      const dropped: string[] = [];
      while (!stop) dropped.push(...(await maintainPartitions(t.dataSource, { records: RECORDS_DAYS, minute: MINUTE_DAYS })).dropped);
      return dropped;
    })();
    await Promise.all(
      Array.from({ length: 4 }, async (_v, c) => {
        for (let b = 0; b < 6; b++) {
          const batch: RecordBody[] = Array.from({ length: 100 }, (_w, i) =>
            record(acme.member.id, { created_at: now - Math.floor(((c * 600 + b * 100 + i) / 2400) * (RECORDS_DAYS - 1) * DAY) }),
          );
          const r = await ingestOk(t, ingestKey, batch); // awaited before the +=: concurrent clients
          accepted += r.accepted;
        }
      }),
    );
    stop = true;
    const dropped = await maintenance;
    expect(accepted).toBe(2400);
    expect(dropped.sort()).toEqual(doomed.sort());
    const [{ n: kept }] = await t.dataSource.query('SELECT count(*)::int AS n FROM completion_records WHERE created_at >= $1', [new Date(recordsCutoff * 1000)]);
    expect(kept).toBe(before + 2400);
    expect((await t.dataSource.query(`SELECT count(*)::int AS n FROM completion_records WHERE id LIKE 'old-%'`))[0].n).toBe(0);
    const [{ n: oldMinutes }] = await t.dataSource.query('SELECT count(*)::int AS n FROM usage_rollups_minute WHERE bucket_start < $1', [new Date((minuteCutoff - 31 * DAY) * 1000)]);
    expect(oldMinutes).toBe(0);
    // Months ahead exist for both tables.
    for (const table of ['completion_records', 'usage_rollups_minute'] as const) {
      const names = (await listPartitions(t.dataSource, table)).map((p) => p.name);
      for (const month of monthsBetween(now, now + 60 * DAY)) {
        const d = new Date(month * 1000);
        expect(names).toContain(`${table}_p${d.getUTCFullYear()}${String(d.getUTCMonth() + 1).padStart(2, '0')}`);
      }
    }
  });
});

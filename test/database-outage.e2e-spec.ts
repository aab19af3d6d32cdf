import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { createTestDatabase, TestDatabase } from './helpers/test-database';
import { TcpProxy } from './helpers/tcp-proxy';
import { foldJournal, record } from './helpers/usage';

/** SPEC promises under a PostgreSQL outage: 503 + Retry-After, the process stays up, nothing half-written. */
describe('database outage during ingest', () => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  let t: TestApp;

  beforeAll(async () => {
    db = await createTestDatabase();
    const url = new URL(db.url);
    proxy = await new TcpProxy(url.hostname, Number(url.port || 5432)).start();
    url.host = `127.0.0.1:${proxy.port}`;
    t = await startTestApp({}, { database: { ...db, url: url.toString() } });
  });
  afterAll(async () => {
    await t.close();
    await proxy.cut();
    await db.drop();
  });

  it('answers 503 with Retry-After while the database is down, then accepts the retried batches exactly once', async () => {
    const acme = await seedOrg(t, 'Acme');
    const ingestKey = (await createSystemKey(t, 'ingest')).key;
    const now = Math.floor(Date.now() / 1000);
    const batches = Array.from({ length: 12 }, (_, b) =>
      Array.from({ length: 200 }, (_, i) => record(acme.member.id, { id: `outage-${b}-${i}`, created_at: now - 60, input_tokens: 10, output_tokens: 5, cost_nano: '1000' })),
    );
    const send = (batch: unknown[]) => t.post('/api/v1/llm/usage/records', { records: batch }, { key: ingestKey });

    // The first batches go through; the outage starts while others are in flight.
    expect((await send(batches[0])).status).toBe(200);
    const inFlight = Promise.all(batches.slice(1, 6).map(send));
    await proxy.cut();
    const duringOutage = [...(await inFlight), ...(await Promise.all(batches.slice(6).map(send)))];
    const failed = duringOutage.filter((r) => r.status !== 200);
    expect(failed.length).toBeGreaterThan(0);
    for (const res of failed) {
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(res.body.error).toMatchObject({ type: 'service_unavailable_error', code: 'database_unavailable' });
      expect(res.text).not.toMatch(/INSERT|SELECT|completion_records/);
    }
    expect((await t.get('/health/live', { key: null })).status).toBe(200);
    expect((await t.get('/health/ready', { key: null })).status).toBe(503);
    // Monitoring still answers, with every series (the journal's gauges keep their last figures).
    const metrics = await t.get('/metrics', { key: null });
    expect(metrics.status).toBe(200);
    expect(metrics.text).toMatch(/tally_rollup_pending_deltas \d+/);
    expect(metrics.text).toMatch(/tally_http_requests_total\{[^}]*status="503"/);

    await proxy.restore();
    // Clients retry every batch (they cannot know which of the in-flight ones committed).
    let ready = 0;
    for (let i = 0; i < 50 && ready !== 200; i++) {
      ready = (await t.get('/health/ready', { key: null })).status;
      if (ready !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    expect(ready).toBe(200);
    // What the clients were told was stored: the batches that got through during the outage, then the retries.
    let accepted = 200 + duringOutage.filter((r) => r.status === 200).reduce((sum, r) => sum + r.body.accepted, 0);
    for (const batch of batches.slice(1)) {
      const res = await send(batch);
      expect(res.status).toBe(200);
      accepted += res.body.accepted;
    }
    const [{ n, tokens }] = await t.dataSource.query(`SELECT count(*)::int AS n, sum(input_tokens + output_tokens)::int AS tokens FROM completion_records`);
    expect(n).toBe(12 * 200);
    expect(accepted).toBe(12 * 200); // each record reported accepted exactly once across all attempts
    expect(tokens).toBe(12 * 200 * 15);
    // Rollups agree with the records (once the journal is folded): no half-written batch.
    await foldJournal(t);
    const [day] = await t.dataSource.query(`SELECT sum(num_model_requests)::int AS n, sum(input_tokens + output_tokens)::int AS tokens FROM usage_rollups_day`);
    expect(day).toEqual({ n: 12 * 200, tokens: 12 * 200 * 15 });
    const [minute] = await t.dataSource.query(`SELECT sum(num_model_requests)::int AS n FROM usage_rollups_minute`);
    expect(minute.n).toBe(12 * 200);
  });
});

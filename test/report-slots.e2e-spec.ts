import { sample } from './helpers/metrics';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { ingestOk, record } from './helpers/usage';
import { UsageAggregator } from '../src/usage/usage-aggregator';
import { RowStream } from '../src/usage/report-cursor';
import { AggregateRow } from '../src/usage/usage-aggregator';

/**
 * A report holds a pooled connection while it is read. A process runs at most REPORT_CONCURRENCY
 * reports at once, REPORT_CONCURRENCY_PER_ORG of one org: one tenant's slow or many readers wait
 * (then get a 503 reports_busy) instead of taking the pool from every other tenant's ingest,
 * authentication and reports (found by a review: 25 stalled report readers of one member key made
 * another org's budget read a 503 after 6 s).
 */
describe('report slots: one org cannot take every report connection', () => {
  let t: TestApp;
  let ingestKey: string;
  beforeAll(async () => {
    // Fetch 1 row at a time: a report of 2+ rows keeps its cursor (and its slot) until read. A
    // report waits at most half of the 4 s statement timeout (2 s) before its 503.
    t = await startTestApp({ REPORT_CONCURRENCY: '2', REPORT_CONCURRENCY_PER_ORG: '1', REPORT_FETCH_ROWS: '1', REPORT_STATEMENT_TIMEOUT_MS: '4000' });
    ingestKey = (await createSystemKey(t, 'ingest')).key;
  });
  afterAll(() => t.close());

  it("an org at its share waits, then gets 503 reports_busy with Retry-After, while another org's reports and ingest run; a freed slot lets it in", async () => {
    const a = await seedOrg(t, 'SlotsA');
    const b = await seedOrg(t, 'SlotsB');
    const now = Math.floor(Date.now() / 1000);
    for (const org of [a, b]) {
      await ingestOk(t, ingestKey, ['m1', 'm2', 'm3'].map((model) => record(org.member.id, { model, created_at: now - 30 })));
    }
    const start = now - 3600;
    const completions = (key: string) => t.get(`/api/v1/llm/usage/completions?start_time=${start}&group_by=model&bucket_width=1h`, { key });
    const costs = (key: string) => t.get(`/api/v1/llm/usage/costs?start_time=${start}&end_time=${now + 60}&group_by=model`, { key });

    // Org A's one slot, held by a report nobody reads.
    const held: RowStream<AggregateRow> = await t.app.get(UsageAggregator).aggregateStream({
      from: start,
      to: now + 60,
      dimensions: ['model'],
      measures: ['input_tokens'],
      filter: { orgId: a.org.id, anyOf: [] },
    });
    try {
      const [busy, busyCosts, other] = await Promise.all([completions(a.orgAdmin.key), costs(a.orgAdmin.key), completions(b.orgAdmin.key)]);
      expect(busy.status).toBe(503);
      expect(busy.body.error).toMatchObject({ code: 'reports_busy', type: 'service_unavailable_error' });
      expect(busy.headers.get('retry-after')).toBe('1');
      expect(busyCosts.status).toBe(503);
      expect(busyCosts.body.error.code).toBe('reports_busy');
      expect(other.status).toBe(200);
      expect(other.body.data.flatMap((bucket: { results: unknown[] }) => bucket.results)).toHaveLength(3);
      expect((await ingestOk(t, ingestKey, [record(b.member.id, { created_at: now - 20 })])).accepted).toBe(1);
    } finally {
      await held.close();
    }
    expect((await completions(a.orgAdmin.key)).status).toBe(200);
    expect((await costs(a.orgAdmin.key)).status).toBe(200);
    expect(sample((await t.get('/metrics', { key: null })).text, 'tally_report_busy_total')).toBeGreaterThanOrEqual(2);
  });

  it('a report that waits for a slot runs once the holder is done, without a 503', async () => {
    const a = await seedOrg(t, 'SlotsWait');
    const now = Math.floor(Date.now() / 1000);
    await ingestOk(t, ingestKey, ['m1', 'm2'].map((model) => record(a.member.id, { model, created_at: now - 30 })));
    const held = await t.app.get(UsageAggregator).aggregateStream({ from: now - 3600, to: now + 60, dimensions: ['model'], measures: ['input_tokens'], filter: { orgId: a.org.id, anyOf: [] } });
    const waiting = t.get(`/api/v1/llm/usage/costs?start_time=${now - 3600}&end_time=${now + 60}&group_by=model`, { key: a.orgAdmin.key });
    await new Promise((resolve) => setTimeout(resolve, 300));
    await held.close();
    const res = await waiting;
    expect(res.status).toBe(200);
    expect(res.body.data).toHaveLength(2);
  });
});

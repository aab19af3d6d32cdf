import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Client } from 'pg';
import { IngestRecordDto } from '../src/usage/dto/ingest.dto';
import { UsageIngestService } from '../src/usage/usage-ingest.service';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { ingest, record } from './helpers/usage';
import { waitFor } from './helpers/wait-for';

setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

/**
 * Issue 13, memory: a batch lives through several round trips (keys, prices, the insert, the
 * budgets after it). If its parsed body lived that long too, every record object would be
 * promoted to the old generation, and the old generation's growth is what sets the API's peak
 * RSS under ingest (BENCHMARKS.md). The ingest turns the records into its own objects before its
 * first round trip; nothing may keep the parsed ones after that.
 */
describe('usage ingest: the parsed body is not kept while the batch is stored', () => {
  let t: TestApp;
  let pg: Client;

  beforeAll(async () => {
    t = await startTestApp();
    pg = new Client({ connectionString: t.db.url });
    await pg.connect();
  });
  afterAll(async () => {
    await pg.end();
    await t.close();
  });

  it('lets the parsed records be collected while the insert waits on a lock, and still stores them all', async () => {
    const acme = await seedOrg(t, 'Acme');
    const ingestKey = await createSystemKey(t, 'ingest');
    const service = t.app.get(UsageIngestService);
    const parsed: Array<WeakRef<IngestRecordDto>> = [];
    const ingestOriginal = service.ingest.bind(service);
    // Not async (an async wrapper would itself keep the records): notes what the route parsed.
    service.ingest = (records: IngestRecordDto[]) => {
      parsed.push(...records.map((r) => new WeakRef(r)));
      return ingestOriginal(records);
    };
    try {
      await pg.query('BEGIN');
      await pg.query('LOCK TABLE completion_records IN SHARE MODE'); // the batch's INSERT waits for it
      const answer = ingest(t, ingestKey.key, Array.from({ length: 50 }, () => record(acme.member.id)));
      await waitFor(async () => {
        const waiting = await t.dataSource.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO completion_records%'`,
        );
        return waiting[0].n === 1;
      }, 'the batch INSERT to wait on the lock');
      expect(parsed).toHaveLength(50);
      collectGarbage();
      collectGarbage();
      expect(parsed.filter((ref) => ref.deref() !== undefined)).toHaveLength(0);
      await pg.query('COMMIT');
      const res = await answer;
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ object: 'usage.records.ingest', accepted: 50, duplicates: 0 });
      expect((await t.dataSource.query('SELECT count(*)::int AS n FROM completion_records WHERE org_id = $1', [acme.org.id]))[0].n).toBe(50);
    } finally {
      await pg.query('ROLLBACK').catch(() => undefined);
      service.ingest = ingestOriginal;
    }
  });
});

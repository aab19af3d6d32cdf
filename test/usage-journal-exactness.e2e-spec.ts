import { ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { JOURNAL_TABLE } from '../src/usage/rollup-journal';
import { ROLLUPS } from '../src/usage/rollups';
import { buildAggregateSql } from '../src/usage/usage-aggregator';
import { spendByKeysSql } from '../src/usage/usage-spend.service';
import { createSystemKey, seedOrg, startTestApp, TestApp } from './helpers/test-app';
import { DAY, foldJournal, ingest, query, RecordBody } from './helpers/usage';
import { prng } from './helpers/usage-random';

/**
 * SPEC §8 / issue 13: ingest appends to the rollup journal and a folder (here a child process,
 * SIGKILLed again and again, often inside a fold) moves it into the rollups. While 4 clients
 * ingest (retries, concurrent re-sends, in-batch duplicates, records back-dated up to 20 days), a
 * checker compares, in one REPEATABLE READ snapshot, the 31-day report's SQL (unaligned range) and
 * the budget spend SQL with a plain GROUP BY over the records: always equal. After every 200 the
 * client's own report over HTTP counts exactly the records it has had acknowledged.
 */
const ROOT = resolve(__dirname, '..');
const CLIENTS = 4;
const BATCHES = 14;
const BATCH = 120;

interface Client {
  keyId: string;
  batches: RecordBody[][];
  acknowledged: Set<string>;
}

describe('rollup journal: exact at every moment while the folder is SIGKILLed mid-fold', () => {
  let t: TestApp;
  let orgId: string;
  let ingestKey: string;
  const clients: Client[] = [];
  const now = Math.floor(Date.now() / 1000);

  beforeAll(async () => {
    // No folder in the app: the only folder is the child process below.
    t = await startTestApp({ PROCESS_ROLE: 'api' });
    const acme = await seedOrg(t, 'Acme', 'team-a');
    orgId = acme.org.id;
    ingestKey = (await createSystemKey(t, 'ingest')).key;
    const rand = prng(1313);
    let n = 0;
    for (let c = 0; c < CLIENTS; c++) {
      const keyId = (await acme.make('member')).id;
      const batches: RecordBody[][] = [];
      for (let b = 0; b < BATCHES; b++) {
        const fresh: RecordBody[] = Array.from({ length: BATCH }, () => ({
          id: `chatcmpl-x-${++n}`,
          api_key_id: keyId,
          model: ['m-a', 'm-b', 'm-c'][Math.floor(rand() * 3)],
          input_tokens: 1 + Math.floor(rand() * 5000),
          output_tokens: Math.floor(rand() * 2000),
          user_id: rand() < 0.5 ? `user-${Math.floor(rand() * 5)}` : null,
          cost_nano: String(Math.floor(rand() * 1e12)),
          // Back-dated up to 20 days, a few in the current minute.
          created_at: rand() < 0.1 ? now - Math.floor(rand() * 30) : now - Math.floor(rand() * 20 * DAY),
        }));
        // In-batch duplicates, and a retry of part of the previous batch.
        const repeats = fresh.slice(0, 8);
        const retried = b > 0 ? batches[b - 1].slice(0, 15) : [];
        batches.push([...fresh, ...repeats, ...retried]);
      }
      clients.push({ keyId, batches, acknowledged: new Set() });
    }
  });
  afterAll(() => t.close());

  /** The report's and the spend's SQL against a GROUP BY over the records, in one snapshot. */
  const check = () =>
    t.dataSource.transaction('REPEATABLE READ', async (m) => {
      const to = Math.floor(Date.now() / 1000) + 60;
      const from = to - 31 * DAY - 37; // unaligned: raw, minute, hour and day segments
      const built = buildAggregateSql({
        from,
        to,
        width: '1d',
        dimensions: ['api_key_id'],
        measures: ['num_model_requests', 'input_tokens', 'output_tokens', 'cost_nano'],
        filter: { orgId, anyOf: [] },
      })!;
      const report = (await m.query(built.sql, built.params)).map((r: Record<string, unknown>) =>
        [r.bucket, r.api_key_id, r.num_model_requests, r.input_tokens, r.output_tokens, r.cost_nano].map(String).join('|'),
      );
      const plain = (
        await m.query(
          `SELECT (floor(extract(epoch FROM created_at) / ${DAY}) * ${DAY})::bigint AS bucket, api_key_id, count(*) AS n,
             SUM(input_tokens) AS i, SUM(output_tokens) AS o, SUM(cost_nano) AS c
           FROM completion_records WHERE org_id = $1 AND created_at >= $2 AND created_at < $3 GROUP BY 1, 2 ORDER BY 1, 2`,
          [orgId, new Date(from * 1000), new Date(to * 1000)],
        )
      ).map((r: Record<string, unknown>) => [r.bucket, r.api_key_id, r.n, r.i, r.o, r.c].map(String).join('|'));
      expect(report).toEqual(plain);

      const dayFrom = new Date((Math.floor(to / DAY) - 30) * DAY * 1000);
      const dayTo = new Date((Math.floor(to / DAY) + 1) * DAY * 1000);
      // Three windows in one statement: every key of the org over 31 days, two keys over the last
      // two days, and every key over an empty week: each must equal its own GROUP BY.
      const twoDays = new Date(dayTo.getTime() - 2 * DAY * 1000);
      const windows = [
        { orgId, from: dayFrom, to: dayTo },
        { orgId, from: twoDays, to: dayTo, apiKeyIds: [clients[0].keyId, clients[0].keyId, clients[2].keyId, 'key_none'] },
        { orgId, from: new Date(dayFrom.getTime() - 7 * DAY * 1000), to: dayFrom },
      ];
      const spendSql = spendByKeysSql(windows);
      const spend = (await m.query(spendSql.sql, spendSql.params)).map((r: Record<string, unknown>) => `${r.g}|${r.api_key_id}|${r.cost_nano}|${r.tokens}`).sort();
      const plainSpend: string[] = [];
      for (const [g, w] of windows.entries()) {
        const rows = await m.query(
          `SELECT api_key_id, SUM(cost_nano)::text AS c, SUM(input_tokens + output_tokens)::text AS t FROM completion_records
           WHERE org_id = $1 AND created_at >= $2 AND created_at < $3 AND ($4::varchar[] IS NULL OR api_key_id = ANY($4)) GROUP BY api_key_id`,
          [w.orgId, w.from, w.to, w.apiKeyIds ?? null],
        );
        plainSpend.push(...rows.map((r: Record<string, unknown>) => `${g}|${r.api_key_id}|${r.c}|${r.t}`));
      }
      expect(spend).toEqual(plainSpend.sort());
      const [{ pending }] = await m.query(`SELECT count(*)::int AS pending FROM ${JOURNAL_TABLE}`);
      return pending as number;
    });

  /** The client's own 31-day report over HTTP: every record it had acknowledged, no more. */
  const visible = async (client: Client) => {
    const end = Math.floor(Date.now() / 1000) + 60;
    const res = await t.get(
      `/api/v1/llm/usage/completions?${query({ start_time: end - 31 * DAY - 37, end_time: end, bucket_width: '1d', limit: 40, api_key_ids: client.keyId })}`,
    );
    expect(res.status).toBe(200);
    expect(res.body.has_more).toBe(false);
    return res.body.data.reduce((n: number, b: { results: Array<{ num_model_requests: number }> }) => n + b.results.reduce((s, r) => s + r.num_model_requests, 0), 0);
  };

  it('reports and spend equal the records in every snapshot; acknowledged means visible; replay changes nothing', async () => {
    // The folder: a child process, SIGKILLed again and again and started again.
    let folder: ChildProcess | undefined;
    let inFold = false;
    let started = false;
    let commits = 0;
    let kills = 0;
    let midFoldKills = 0;
    let running = true;
    const startFolder = () => {
      const child = spawn(process.execPath, ['-r', resolve(ROOT, 'test/helpers/swc-register.js'), resolve(ROOT, 'test/helpers/fold-child.ts')], {
        env: { ...process.env, DATABASE_URL: t.db.url, FOLD_LIMIT: '40', FOLD_HOLD_MS: '20' },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      inFold = false;
      started = false;
      child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        for (const line of chunk.split('\n').filter(Boolean)) {
          started = true;
          inFold = line === 'begin';
          if (line.startsWith('commit ') && line !== 'commit 0') commits++;
        }
      });
      folder = child;
    };
    const killer = (async () => {
      const rand = prng(7);
      startFolder();
      while (running) {
        // Killed some 30-200 ms after it started folding.
        while (running && !started) await new Promise((r) => setTimeout(r, 5));
        await new Promise((r) => setTimeout(r, 30 + rand() * 170));
        if (inFold) midFoldKills++;
        folder!.kill('SIGKILL');
        kills++;
        await new Promise((r) => folder!.once('exit', r));
        if (running) startFolder();
      }
    })();

    // The checker: many snapshots while the clients ingest.
    let checks = 0;
    let checksWithPending = 0;
    let clientsDone = false;
    const checker = (async () => {
      while (!clientsDone) {
        if ((await check()) > 0) checksWithPending++;
        checks++;
      }
    })();

    const send = async (client: Client, batch: RecordBody[]) => {
      const res = await ingest(t, ingestKey, batch);
      expect(res.status).toBe(200);
      for (const r of batch) client.acknowledged.add(r.id);
      return res.body as { accepted: number; duplicates: number };
    };
    let accepted = 0;
    await Promise.all(
      clients.map(async (client, c) => {
        for (const [b, batch] of client.batches.entries()) {
          // Every third batch is sent twice at once (a gateway retrying before the first answer).
          const answers = b % 3 === c % 3 ? await Promise.all([send(client, batch), send(client, batch)]) : [await send(client, batch)];
          accepted += answers.reduce((n, a) => n + a.accepted, 0);
          expect(await visible(client)).toBe(client.acknowledged.size);
        }
      }),
    );
    clientsDone = true;
    await checker;
    running = false;
    await killer;

    const distinct = clients.reduce((n, c) => n + c.acknowledged.size, 0);
    expect(accepted).toBe(distinct);
    expect(checks).toBeGreaterThan(10);
    expect(checksWithPending).toBeGreaterThan(0);
    expect(kills).toBeGreaterThan(3);
    expect(midFoldKills).toBeGreaterThan(0);
    expect(commits).toBeGreaterThan(0);

    // Drained: every rollup holds exactly the records, and the journal is empty.
    await foldJournal(t);
    expect(await check()).toBe(0);
    const [records] = await t.dataSource.query(`SELECT count(*)::text AS n, SUM(cost_nano)::text AS c, SUM(input_tokens)::text AS i FROM completion_records`);
    expect(records.n).toBe(String(distinct));
    for (const r of ROLLUPS) {
      const [sums] = await t.dataSource.query(`SELECT SUM(num_model_requests)::text AS n, SUM(cost_nano)::text AS c, SUM(input_tokens)::text AS i FROM ${r.table}`);
      expect({ table: r.table, ...sums }).toEqual({ table: r.table, ...records });
    }

    // Replaying the whole stream changes nothing.
    const before = await check();
    await Promise.all(
      clients.map(async (client) => {
        for (const batch of client.batches) expect((await send(client, batch)).accepted).toBe(0);
        expect(await visible(client)).toBe(client.acknowledged.size);
      }),
    );
    expect(before).toBe(0);
    expect(await check()).toBe(0);
    expect((await t.dataSource.query(`SELECT count(*)::int AS n FROM completion_records`))[0].n).toBe(distinct);
  });
});

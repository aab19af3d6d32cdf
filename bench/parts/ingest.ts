import { Client } from 'pg';
import { copyInto } from '../data/copy';
import { copyLine, ingestRecord, RECORD_COLUMNS } from '../data/record-format';
import { Traffic } from '../data/traffic';
import { HttpClient } from '../harness/http';
import { fmt, Section } from '../harness/report';
import { LatencySummary, summarize } from '../harness/stats';
import { journalBacklog, JOURNAL_TABLE } from '../../src/usage/rollup-journal';

export const BATCH = 1000;
/** Records posted before the clock starts, to know the worker's folder is running. */
const WARM_UP_RECORDS = 10;

/** One timed HTTP run: every body posted by `clients` keep-alive clients per API process. */
export interface HttpRun {
  processes: number;
  clients: number;
  seconds: number;
  recordsPerSecond: number;
  batch: LatencySummary;
}

export interface IngestMeasurement {
  records: number;
  clients: number;
  /** Records stored before the run (the table the rows go into). */
  tableRecords: number;
  /** POST /api/v1/llm/usage/records, batches of 1,000, spread over the orgs and the last two hours, one API process. */
  http: HttpRun;
  /** The same kind of batches (other ids) through two API processes side by side, `clients` clients each. */
  twoProcesses: HttpRun;
  /** The same batches (other ids), all on one key of one org and in one minute: every batch adds to the same rollup rows. */
  hot: HttpRun;
  /** COPY of the same rows into completion_records, one stream per client: the floor. */
  copy: { seconds: number; recordsPerSecond: number };
  /** The rollup journal sampled every 250 ms while the HTTP runs went on (a worker folding). */
  fold: { maxLagSeconds: number; maxPendingRows: number; drainSeconds: number };
}

/**
 * Sustained ingest: `clients` concurrent clients post the batches of `records` fresh records
 * (the last two hours of traffic, as a gateway catching up would send them) as fast as the
 * service answers; then through two API processes at once; then the same batches squeezed onto
 * one org and one minute. The same rows (other ids) are then COPYed into the same table by as
 * many connections, and removed again. Bodies and COPY text are prepared before any clock starts.
 * A worker process folds the rollup journal meanwhile; its lag and backlog are sampled.
 */
export async function measureIngest(options: {
  /** One API process, or more side by side (the second one is used by the two-process run). */
  baseUrls: string[];
  ingestKey: string;
  databaseUrl: string;
  traffic: Traffic;
  records: number;
  clients: number;
  tableRecords: number;
  log: (line: string) => void;
}): Promise<IngestMeasurement> {
  const now = Math.floor(Date.now() / 60_000) * 60;
  const from = now - 2 * 3600;
  // Copies: the generator reuses one object per record it yields.
  const generated = Array.from(options.traffic.records(options.records, from, now, 'i'), (r) => ({ ...r }));
  const hotKey = generated[0].apiKeyId;
  const bodiesOf = (records: Iterable<Record<string, unknown>>) => {
    const bodies: string[] = [];
    let batch: unknown[] = [];
    for (const r of records) {
      batch.push(r);
      if (batch.length === BATCH) {
        bodies.push(JSON.stringify({ records: batch }));
        batch = [];
      }
    }
    if (batch.length > 0) bodies.push(JSON.stringify({ records: batch }));
    return bodies;
  };
  const spread = bodiesOf(generated.map((r) => ingestRecord(r)));
  const warmUp = bodiesOf(generated.slice(0, WARM_UP_RECORDS).map((r) => ingestRecord({ ...r, id: `chatcmpl-w${r.id.slice('chatcmpl-'.length)}` })));
  const twoProcessBodies = bodiesOf(generated.map((r) => ingestRecord({ ...r, id: `chatcmpl-t${r.id.slice('chatcmpl-'.length)}` })));
  // Same records, but one key of one org and one minute (the hottest possible rollup rows).
  const hotBodies = bodiesOf(generated.map((r) => ingestRecord({ ...r, id: `chatcmpl-h${r.id.slice('chatcmpl-'.length)}`, apiKeyId: hotKey, createdAt: now - 30 })));
  const copyText: string[][] = Array.from({ length: options.clients }, () => []);
  generated.forEach((record, n) => copyText[n % options.clients].push(copyLine({ ...record, id: `chatcmpl-c${record.id.slice('chatcmpl-'.length)}` })));

  const pg = new Client({ connectionString: options.databaseUrl });
  pg.on('error', () => undefined);
  await pg.connect();
  try {
    return await ingestRuns(options, { pg, warmUp, spread, twoProcessBodies, hotBodies, copyText, from });
  } finally {
    await pg.end().catch(() => undefined);
  }
}

async function ingestRuns(
  options: Parameters<typeof measureIngest>[0],
  prepared: { pg: Client; warmUp: string[]; spread: string[]; twoProcessBodies: string[]; hotBodies: string[]; copyText: string[][]; from: number },
): Promise<IngestMeasurement> {
  const { pg, warmUp, spread, twoProcessBodies, hotBodies, copyText, from } = prepared;
  const fold = { maxLagSeconds: 0, maxPendingRows: 0, drainSeconds: 0 };
  // The worker was started for this part: its start-up is not fold lag. The clock starts once its
  // folder has drained a warm-up batch.
  await postAll(options.baseUrls.slice(0, 1), options.ingestKey, warmUp, 1, WARM_UP_RECORDS);
  await journalDrained(pg);
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const backlog = await journalBacklog({ query: async (sql: string, params?: unknown[]) => (await pg.query(sql, params)).rows });
      fold.maxLagSeconds = Math.max(fold.maxLagSeconds, backlog.lagSeconds);
      fold.maxPendingRows = Math.max(fold.maxPendingRows, backlog.rows);
      await new Promise((r) => setTimeout(r, 250));
    }
  })();

  const run = async (name: string, bodies: string[], urls: string[]): Promise<HttpRun> => {
    const result = await postAll(urls, options.ingestKey, bodies, options.clients, options.records);
    options.log(`  ${name}: ${options.records} records in ${result.seconds.toFixed(1)} s over HTTP (${urls.length} API process${urls.length > 1 ? 'es' : ''})`);
    return result;
  };
  let http: HttpRun, twoProcesses: HttpRun, hot: HttpRun;
  try {
    http = await run('spread', spread, options.baseUrls.slice(0, 1));
    twoProcesses = await run('two processes', twoProcessBodies, options.baseUrls.slice(0, 2));
    hot = await run('one org, one minute', hotBodies, options.baseUrls.slice(0, 1));
  } finally {
    sampling = false;
    await sampler;
  }
  fold.drainSeconds = await journalDrained(pg);
  options.log(`  fold: lag at most ${fold.maxLagSeconds.toFixed(2)} s, at most ${fold.maxPendingRows} pending rows; drained ${fold.drainSeconds.toFixed(1)} s after the last batch`);

  const connections = await Promise.all(
    copyText.map(async () => {
      const client = new Client({ connectionString: options.databaseUrl });
      await client.connect();
      return client;
    }),
  );
  try {
    const started = performance.now();
    const copied = await Promise.all(connections.map((client, i) => copyInto(client, 'completion_records', RECORD_COLUMNS, chunked(copyText[i]))));
    const copySeconds = (performance.now() - started) / 1000;
    if (copied.reduce((a, b) => a + b, 0) !== options.records) throw new Error(`COPY stored ${copied} rows`);
    options.log(`  COPY: the same ${options.records} rows in ${copySeconds.toFixed(1)} s`);
    await connections[0].query(`DELETE FROM completion_records WHERE created_at >= $1 AND id LIKE 'chatcmpl-c%'`, [new Date(from * 1000).toISOString()]);
    return {
      records: options.records,
      clients: options.clients,
      tableRecords: options.tableRecords,
      http,
      twoProcesses,
      hot,
      copy: { seconds: copySeconds, recordsPerSecond: options.records / copySeconds },
      fold,
    };
  } finally {
    await Promise.all(connections.map((c) => c.end()));
  }
}

/** Posts every body, `clientsPerUrl` clients per base URL taking the next body as they finish; checks each batch was stored whole. */
async function postAll(urls: string[], key: string, bodies: string[], clientsPerUrl: number, records: number): Promise<HttpRun> {
  const clients = urls.map((url) => new HttpClient(url, key, clientsPerUrl));
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  try {
    await Promise.all(
      clients.flatMap((http) =>
        Array.from({ length: clientsPerUrl }, async () => {
          for (let i = next++; i < bodies.length; i = next++) {
            const t0 = performance.now();
            const res = await http.send('POST', '/api/v1/llm/usage/records', bodies[i]);
            latencies.push(performance.now() - t0);
            if (res.status !== 200) throw new Error(`ingest: ${res.status} ${res.text.slice(0, 300)}`);
            const { accepted } = JSON.parse(res.text) as { accepted: number };
            if (accepted !== Math.min(BATCH, records - i * BATCH)) throw new Error(`ingest: batch ${i} accepted ${accepted} records`);
          }
        }),
      ),
    );
  } finally {
    for (const c of clients) c.close();
  }
  const seconds = (performance.now() - started) / 1000;
  return { processes: urls.length, clients: clientsPerUrl * urls.length, seconds, recordsPerSecond: records / seconds, batch: summarize(latencies) };
}

/** Waits until the rollup journal is empty; the seconds it took. */
async function journalDrained(pg: Client): Promise<number> {
  const started = performance.now();
  for (;;) {
    const [{ n }] = (await pg.query(`SELECT count(*)::int AS n FROM ${JOURNAL_TABLE}`)).rows;
    if (n === 0) return (performance.now() - started) / 1000;
    await new Promise((r) => setTimeout(r, 100));
  }
}

function* chunked(lines: string[], size = BATCH): Generator<string> {
  for (let i = 0; i < lines.length; i += size) yield lines.slice(i, i + size).join('');
}

/** Part 2 of the report: sustained HTTP ingest against COPY of the same rows, one and two API processes, hot rows, fold lag. */
export function ingestSection(m: IngestMeasurement): Section {
  const share = m.http.recordsPerSecond / m.copy.recordsPerSecond;
  const scale = m.twoProcesses.recordsPerSecond / m.http.recordsPerSecond;
  const hot = m.hot.recordsPerSecond / m.http.recordsPerSecond;
  const row = (path: string, r: HttpRun) => [
    path,
    String(r.processes),
    String(r.clients),
    fmt.count(r.recordsPerSecond),
    r.seconds.toFixed(1),
    fmt.ratio(r.recordsPerSecond / m.copy.recordsPerSecond),
    `${fmt.ms(r.batch.p50)} ms`,
    `${fmt.ms(r.batch.p99)} ms`,
  ];
  return {
    id: 'ingest',
    title: '2. Ingest',
    method:
      `${fmt.count(m.records)} records of the last two hours in batches of ${fmt.count(BATCH)}, ${m.clients} concurrent keep-alive clients per API process posting as fast as answered, ` +
      `into a table of ${fmt.count(m.tableRecords)} records with budgets on every key, a worker process folding the rollup journal; the same batches (other ids) through two API processes ` +
      `side by side (one PostgreSQL, one Redis); the same batches on one key of one org and one minute; then the same rows (other ids) by COPY over ${m.clients} connections into the same table (the floor). ` +
      'The journal is sampled every 250 ms during the HTTP runs.',
    tables: [
      {
        header: ['path', 'API processes', 'clients', 'records/s', 'seconds', '÷ COPY', 'batch p50', 'batch p99'],
        rows: [
          row('POST /api/v1/llm/usage/records, spread over orgs', m.http),
          row('the same, two API processes', m.twoProcesses),
          row('the same, one org and one minute', m.hot),
          ['COPY completion_records (floor)', '', String(m.clients), fmt.count(m.copy.recordsPerSecond), m.copy.seconds.toFixed(1), '1×', '', ''],
        ],
      },
      {
        header: ['fold lag (max)', 'pending journal rows (max)', 'drained after the last batch'],
        rows: [[`${m.fold.maxLagSeconds.toFixed(2)} s`, fmt.count(m.fold.maxPendingRows), `${m.fold.drainSeconds.toFixed(1)} s`]],
      },
    ],
    goals: [
      { goal: 'ingest ≥ ½ of the COPY rate', measured: `${fmt.ratio(share)} (${fmt.count(m.http.recordsPerSecond)} vs ${fmt.count(m.copy.recordsPerSecond)} records/s)`, pass: share >= 0.5 },
      { goal: 'one org and one minute ≥ 0.9× spread over many orgs', measured: fmt.ratio(hot), pass: hot >= 0.9 },
      { goal: 'two API processes > one (ratio reported)', measured: fmt.ratio(scale), pass: scale > 1 },
      { goal: 'fold lag < 2 s at the highest ingest rate', measured: `${m.fold.maxLagSeconds.toFixed(2)} s`, pass: m.fold.maxLagSeconds < 2 },
    ],
    data: m,
  };
}

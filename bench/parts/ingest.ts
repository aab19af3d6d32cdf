import { Client } from 'pg';
import { copyInto } from '../data/copy';
import { copyLine, ingestRecord, RECORD_COLUMNS } from '../data/record-format';
import { Traffic } from '../data/traffic';
import { HttpClient } from '../harness/http';
import { fmt, Section } from '../harness/report';
import { LatencySummary, summarize } from '../harness/stats';

export const BATCH = 1000;

export interface IngestMeasurement {
  records: number;
  clients: number;
  /** Records stored before the run (the table the rows go into). */
  tableRecords: number;
  /** POST /api/v1/llm/usage/records, batches of 1,000. */
  http: { seconds: number; recordsPerSecond: number; batch: LatencySummary };
  /** COPY of the same rows into completion_records, one stream per client: the floor. */
  copy: { seconds: number; recordsPerSecond: number };
}

/**
 * Sustained ingest: `clients` concurrent clients post the batches of `records` fresh records
 * (the last two hours of traffic, as a gateway catching up would send them) as fast as the
 * service answers. Then the same rows (other ids) are COPYed into the same table by as many
 * connections, and removed again. Bodies and COPY text are prepared before either clock starts.
 */
export async function measureIngest(options: {
  baseUrl: string;
  ingestKey: string;
  databaseUrl: string;
  traffic: Traffic;
  records: number;
  clients: number;
  tableRecords: number;
  /** Record ids are `chatcmpl-<idPrefix>…`; the COPYed copies `chatcmpl-c<idPrefix>…`. */
  idPrefix?: string;
  log: (line: string) => void;
}): Promise<IngestMeasurement> {
  const prefix = options.idPrefix ?? 'i';
  const now = Math.floor(Date.now() / 60_000) * 60;
  const from = now - 2 * 3600;
  const bodies: string[] = [];
  const copyText: string[][] = Array.from({ length: options.clients }, () => []);
  let batch: unknown[] = [];
  let n = 0;
  for (const record of options.traffic.records(options.records, from, now, prefix)) {
    batch.push(ingestRecord(record));
    if (batch.length === BATCH) {
      bodies.push(JSON.stringify({ records: batch }));
      batch = [];
    }
    copyText[n++ % options.clients].push(copyLine({ ...record, id: `chatcmpl-c${record.id.slice('chatcmpl-'.length)}` }));
  }
  if (batch.length > 0) bodies.push(JSON.stringify({ records: batch }));

  const http = new HttpClient(options.baseUrl, options.ingestKey, options.clients);
  const latencies: number[] = [];
  let next = 0;
  let started = performance.now();
  await Promise.all(
    Array.from({ length: options.clients }, async () => {
      for (let i = next++; i < bodies.length; i = next++) {
        const t0 = performance.now();
        const res = await http.send('POST', '/api/v1/llm/usage/records', bodies[i]);
        latencies.push(performance.now() - t0);
        if (res.status !== 200) throw new Error(`ingest: ${res.status} ${res.text.slice(0, 300)}`);
        const { accepted } = JSON.parse(res.text) as { accepted: number };
        if (accepted !== Math.min(BATCH, options.records - i * BATCH)) throw new Error(`ingest: batch ${i} accepted ${accepted} records`);
      }
    }),
  );
  const httpSeconds = (performance.now() - started) / 1000;
  http.close();
  options.log(`  ingest: ${options.records} records in ${httpSeconds.toFixed(1)} s over HTTP`);

  const connections = await Promise.all(
    copyText.map(async () => {
      const client = new Client({ connectionString: options.databaseUrl });
      await client.connect();
      return client;
    }),
  );
  try {
    started = performance.now();
    const copied = await Promise.all(connections.map((client, i) => copyInto(client, 'completion_records', RECORD_COLUMNS, chunked(copyText[i]))));
    const copySeconds = (performance.now() - started) / 1000;
    if (copied.reduce((a, b) => a + b, 0) !== options.records) throw new Error(`COPY stored ${copied} rows`);
    options.log(`  COPY: the same ${options.records} rows in ${copySeconds.toFixed(1)} s`);
    await connections[0].query(`DELETE FROM completion_records WHERE created_at >= $1 AND id LIKE 'chatcmpl-c%'`, [new Date(from * 1000).toISOString()]);
    return {
      records: options.records,
      clients: options.clients,
      tableRecords: options.tableRecords,
      http: { seconds: httpSeconds, recordsPerSecond: options.records / httpSeconds, batch: summarize(latencies) },
      copy: { seconds: copySeconds, recordsPerSecond: options.records / copySeconds },
    };
  } finally {
    await Promise.all(connections.map((c) => c.end()));
  }
}

function* chunked(lines: string[], size = BATCH): Generator<string> {
  for (let i = 0; i < lines.length; i += size) yield lines.slice(i, i + size).join('');
}

/** Part 2 of the report: sustained HTTP ingest against COPY of the same rows. */
export function ingestSection(m: IngestMeasurement): Section {
  const share = m.http.recordsPerSecond / m.copy.recordsPerSecond;
  return {
    id: 'ingest',
    title: '2. Ingest',
    method:
      `${fmt.count(m.records)} records of the last two hours in batches of ${fmt.count(BATCH)}, ${m.clients} concurrent keep-alive clients posting as fast as answered, ` +
      `into a table of ${fmt.count(m.tableRecords)} records with budgets on every key; then the same rows (other ids) by COPY over ${m.clients} connections into the same table (the floor).`,
    tables: [
      {
        header: ['path', 'records/s', 'seconds', '÷ COPY', 'batch p50', 'batch p99'],
        rows: [
          ['POST /api/v1/llm/usage/records', fmt.count(m.http.recordsPerSecond), m.http.seconds.toFixed(1), fmt.ratio(share), `${fmt.ms(m.http.batch.p50)} ms`, `${fmt.ms(m.http.batch.p99)} ms`],
          ['COPY completion_records (floor)', fmt.count(m.copy.recordsPerSecond), m.copy.seconds.toFixed(1), '1×', '', ''],
        ],
      },
    ],
    goals: [{ goal: 'ingest ≥ ½ of the COPY rate', measured: `${fmt.ratio(share)} (${fmt.count(m.http.recordsPerSecond)} vs ${fmt.count(m.copy.recordsPerSecond)} records/s)`, pass: share >= 0.5 }],
    data: m,
  };
}

import { foldBatch, JOURNAL_TABLE } from '../../src/usage/rollup-journal';
import { HttpResult, TestApp } from './test-app';

/** 2024-01-01T00:00:00Z, the seed's start_time. */
export const T0 = 1704067200;
export const MINUTE = 60;
export const HOUR = 3600;
export const DAY = 86400;

export interface RecordBody {
  id: string;
  api_key_id: string;
  model: string;
  input_tokens: number;
  output_tokens: number;
  created_at: number;
  org_id?: string;
  input_cached_tokens?: number;
  input_audio_tokens?: number;
  output_audio_tokens?: number;
  user_id?: string | null;
  project_id?: string | null;
  batch?: boolean;
  service_tier?: string | null;
  cost_nano?: number | string;
  reservation_id?: string | null;
}

let counter = 0;

/** A valid record; ids are unique within the test process unless given. */
export function record(apiKeyId: string, overrides: Partial<RecordBody> = {}): RecordBody {
  counter += 1;
  return {
    id: `chatcmpl-${process.pid}-${counter}`,
    api_key_id: apiKeyId,
    model: 'meetkai:functionary-urdu-mini-pak',
    input_tokens: 100,
    output_tokens: 25,
    created_at: T0 + 3600,
    ...overrides,
  };
}

export function ingest(t: TestApp, key: string, records: unknown[]): Promise<HttpResult> {
  return t.post('/api/v1/llm/usage/records', { records }, { key });
}

/** Ingests and fails the test unless the batch is stored. */
export async function ingestOk(t: TestApp, key: string, records: unknown[]): Promise<{ accepted: number; duplicates: number }> {
  const res = await ingest(t, key, records);
  if (res.status !== 200) throw new Error(`ingest: ${res.status} ${res.text}`);
  return res.body;
}

/**
 * Folds the whole rollup journal into the rollups (waiting for a background fold that holds the
 * lock), so a test can read the rollup tables themselves.
 */
export async function foldJournal(t: TestApp): Promise<void> {
  for (;;) {
    await foldBatch(t.dataSource, 1_000_000, new Date(0));
    const [{ n }] = await t.dataSource.query(`SELECT count(*)::int AS n FROM ${JOURNAL_TABLE}`);
    if (n === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Every row of a table, sorted, with bigint and timestamp columns as strings, for exact
 * comparisons; a rollup table is read once the journal is folded into it.
 */
export async function tableRows(t: TestApp, table: string): Promise<Array<Record<string, unknown>>> {
  if (table.startsWith('usage_rollups_')) await foldJournal(t);
  const rows: Array<Record<string, unknown>> = await t.dataSource.query(`SELECT * FROM ${table}`);
  return rows
    .map((row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, v instanceof Date ? v.toISOString() : v])))
    .sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
}

export function query(params: Record<string, string | number | boolean | Array<string | number>>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    for (const v of Array.isArray(value) ? value : [value]) search.append(key, String(v));
  }
  return search.toString();
}

import { randomBytes } from 'node:crypto';
import { TestApp } from './test-app';

export interface RecordInput {
  api_key_id: string;
  created_at: number;
  input_tokens?: number;
  output_tokens?: number;
  cost_nano?: string | number;
  model?: string;
  user_id?: string;
  id?: string;
}

/** Ingests records through the real API with an ingest key; fails the test on anything but 200. */
export async function ingest(t: TestApp, ingestKey: string, records: RecordInput[]) {
  const res = await t.post(
    '/api/v1/llm/usage/records',
    {
      records: records.map((r) => ({
        id: r.id ?? `chatcmpl-${randomBytes(8).toString('hex')}`,
        model: r.model ?? 'gpt-test',
        input_tokens: r.input_tokens ?? 0,
        output_tokens: r.output_tokens ?? 0,
        ...r,
      })),
    },
    { key: ingestKey },
  );
  if (res.status !== 200) throw new Error(`ingest: ${res.status} ${res.text}`);
  return res.body as { accepted: number; duplicates: number };
}

import { TestApp } from './test-app';

/**
 * A straightforward aggregation over the raw completion_records table: the reference the
 * rollup-backed reports must equal, field by field.
 */
export interface RawRecord {
  org_id: string;
  api_key_id: string;
  team_id: string | null;
  user_id: string | null;
  project_id: string | null;
  model: string;
  batch: boolean;
  service_tier: string | null;
  input_tokens: number;
  output_tokens: number;
  input_cached_tokens: number;
  input_audio_tokens: number;
  output_audio_tokens: number;
  cost_nano: bigint;
  unpriced: boolean;
  created_at: number;
}

export async function loadRawRecords(t: TestApp): Promise<RawRecord[]> {
  const rows = await t.dataSource.query(
    `SELECT org_id, api_key_id, team_id, user_id, project_id, model, batch, service_tier, input_tokens, output_tokens,
            input_cached_tokens, input_audio_tokens, output_audio_tokens, cost_nano, unpriced,
            extract(epoch FROM created_at)::bigint AS created_at
     FROM completion_records`,
  );
  return rows.map((r: Record<string, unknown>) => ({
    ...r,
    input_tokens: Number(r.input_tokens),
    output_tokens: Number(r.output_tokens),
    input_cached_tokens: Number(r.input_cached_tokens),
    input_audio_tokens: Number(r.input_audio_tokens),
    output_audio_tokens: Number(r.output_audio_tokens),
    cost_nano: BigInt(r.cost_nano as string),
    created_at: Number(r.created_at),
  })) as RawRecord[];
}

export interface ReferenceFilter {
  org_id?: string;
  api_key_ids?: string[];
  user_ids?: string[];
  models?: string[];
  project_ids?: string[];
  batch?: boolean;
  /** Scoping: a member's own key, an X-On-Behalf-Of user. */
  only_api_key_id?: string;
  only_user_id?: string;
}

export function matches(r: RawRecord, f: ReferenceFilter): boolean {
  return (
    (f.org_id === undefined || r.org_id === f.org_id) &&
    (f.api_key_ids === undefined || f.api_key_ids.includes(r.api_key_id)) &&
    (f.user_ids === undefined || (r.user_id !== null && f.user_ids.includes(r.user_id))) &&
    (f.models === undefined || f.models.includes(r.model)) &&
    (f.project_ids === undefined || (r.project_id !== null && f.project_ids.includes(r.project_id))) &&
    (f.batch === undefined || r.batch === f.batch) &&
    (f.only_api_key_id === undefined || r.api_key_id === f.only_api_key_id) &&
    (f.only_user_id === undefined || r.user_id === f.only_user_id)
  );
}

const GROUP_FIELDS = ['user_id', 'api_key_id', 'model', 'batch', 'service_tier', 'project_id'] as const;
const WIDTHS: Record<string, number> = { '1m': 60, '1h': 3600, '1d': 86400 };

/** Results sorted by their grouping fields, so both sides compare in one order. */
export function sortResults<T extends Record<string, unknown>>(results: T[]): T[] {
  const key = (r: T) => JSON.stringify(GROUP_FIELDS.map((f) => r[f] ?? null).concat([(r.line_item as string) ?? null]));
  return [...results].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

/** Every bucket of [start, end): UTC-aligned, the first and last clipped to the range. */
export function referenceBuckets(start: number, end: number, width: string): Array<{ start: number; end: number }> {
  const w = WIDTHS[width];
  const buckets = [];
  for (let aligned = Math.floor(start / w) * w; aligned < end; aligned += w) {
    buckets.push({ start: Math.max(aligned, start), end: Math.min(aligned + w, end) });
  }
  return buckets;
}

export function referenceCompletions(
  records: RawRecord[],
  query: { start: number; end: number; width: string; groupBy: string[]; filter: ReferenceFilter },
) {
  return referenceBuckets(query.start, query.end, query.width).map((b) => {
    const groups = new Map<string, Record<string, unknown>>();
    for (const r of records) {
      if (r.created_at < b.start || r.created_at >= b.end || !matches(r, query.filter)) continue;
      const fields = Object.fromEntries(GROUP_FIELDS.map((f) => [f, query.groupBy.includes(f) ? r[f] : null]));
      const key = JSON.stringify(fields);
      const g =
        groups.get(key) ??
        groups
          .set(key, {
            object: 'organization.usage.completions.result',
            input_tokens: 0,
            output_tokens: 0,
            input_cached_tokens: 0,
            num_model_requests: 0,
            input_audio_tokens: 0,
            output_audio_tokens: 0,
            ...fields,
          })
          .get(key)!;
      for (const m of ['input_tokens', 'output_tokens', 'input_cached_tokens', 'input_audio_tokens', 'output_audio_tokens'] as const) {
        (g[m] as number) += r[m];
      }
      (g.num_model_requests as number) += 1;
    }
    return { object: 'bucket', start_time: b.start, end_time: b.end, results: sortResults([...groups.values()]) };
  });
}

const COST_FIELDS: Record<string, keyof RawRecord> = {
  model: 'model',
  api_key_id: 'api_key_id',
  team_id: 'team_id',
  external_user_id: 'user_id',
  org_id: 'org_id',
};

/** The MKA1 cost report over raw records, lines sorted by cost (desc) then fields. */
export function referenceCosts(
  records: RawRecord[],
  query: { start: number; end: number; groupBy: string[]; filter: ReferenceFilter },
): { data: Array<Record<string, unknown>>; total_cost_nano: string; unpriced_models: string[] } {
  const lines = new Map<string, { fields: Record<string, unknown>; cost: bigint }>();
  const unpriced = new Set<string>();
  let total = 0n;
  for (const r of records) {
    if (r.created_at < query.start || r.created_at >= query.end || !matches(r, query.filter)) continue;
    const fields = Object.fromEntries(Object.entries(COST_FIELDS).map(([f, col]) => [f, query.groupBy.includes(f) ? r[col] : null]));
    const key = JSON.stringify(fields);
    const line = lines.get(key) ?? lines.set(key, { fields, cost: 0n }).get(key)!;
    line.cost += r.cost_nano;
    total += r.cost_nano;
    if (r.unpriced) unpriced.add(r.model);
  }
  return {
    data: [...lines.values()].map((l) => ({ ...l.fields, cost_nano: l.cost.toString() })),
    total_cost_nano: total.toString(),
    unpriced_models: [...unpriced].sort(),
  };
}

import { DAY, HOUR, MINUTE, RecordBody } from './usage';

/** A seeded PRNG (mulberry32): the same seed gives the same data on every run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

export const pick = <T>(rand: () => number, items: readonly T[]): T => items[Math.floor(rand() * items.length)];
export const int = (rand: () => number, max: number): number => Math.floor(rand() * max);

export const USERS = ['user_1', 'user_2', 'user_3', 'user_4', null] as const;
export const MODELS = ['meetkai:functionary-urdu-mini-pak', 'model-b', 'model-c', 'unpriced-x'] as const;
export const PROJECTS = ['proj_1', 'proj_2', null] as const;
export const TIERS = ['default', 'flex', null] as const;

/**
 * Random records over [start, start + days): every dimension varies (nulls included), times
 * cluster on day/hour/minute boundaries now and then so that bucket edges are exercised.
 */
export function randomRecords(rand: () => number, keyIds: string[], count: number, start: number, days: number, prefix: string): RecordBody[] {
  return Array.from({ length: count }, (_v, i) => {
    const unit = pick(rand, [DAY, HOUR, MINUTE, 1]);
    const at = start + Math.floor((rand() * days * DAY) / unit) * unit + (rand() < 0.2 ? pick(rand, [0, 1, 59]) : 0);
    const input = int(rand, 5000);
    const record: RecordBody = {
      id: `${prefix}-${i}`,
      api_key_id: pick(rand, keyIds),
      model: pick(rand, MODELS),
      input_tokens: input,
      output_tokens: int(rand, 2000),
      input_cached_tokens: int(rand, input + 1),
      input_audio_tokens: rand() < 0.2 ? int(rand, 100) : 0,
      output_audio_tokens: rand() < 0.2 ? int(rand, 100) : 0,
      user_id: pick(rand, USERS),
      project_id: pick(rand, PROJECTS),
      batch: rand() < 0.3,
      service_tier: pick(rand, TIERS),
      created_at: Math.min(at, start + days * DAY - 1),
    };
    if (rand() < 0.1) record.cost_nano = rand() < 0.5 ? int(rand, 1_000_000) : String(int(rand, 1_000_000_000)) + '000000000';
    return record;
  });
}

import { int, pick } from '../../src/common/random';
import { DAY, HOUR, MINUTE, RecordBody } from './usage';

export { int, pick, prng } from '../../src/common/random';

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

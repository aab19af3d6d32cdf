import { computeCostNano, parseDecimalToNano, TokenPrices } from '../../src/common/money';
import { pickDistinct, Random, WeightedSampler, zipfWeights } from './random';

/** The tenants of the data set: five orgs of uneven size, about 50 keys in all. */
export const ORGS = [
  { name: 'Northwind', share: 0.4, keys: 18 },
  { name: 'Contoso', share: 0.25, keys: 12 },
  { name: 'Fabrikam', share: 0.17, keys: 9 },
  { name: 'Tailspin', share: 0.1, keys: 6 },
  { name: 'Wingtip', share: 0.08, keys: 5 },
] as const;

export const USERS = 1000;

/** Twenty models, most popular first (popularity is Zipf-like: a few carry most requests); prices per million tokens. */
export const MODELS: ReadonlyArray<{ name: string; input: string; cached: string; output: string; audio?: boolean }> = [
  { name: 'openai/gpt-4o-mini', input: '0.15', cached: '0.075', output: '0.60' },
  { name: 'meetkai:functionary-urdu-mini-pak', input: '0.20', cached: '0.10', output: '0.80' },
  { name: 'openai/gpt-4o', input: '2.50', cached: '1.25', output: '10.00' },
  { name: 'anthropic/claude-3-5-haiku', input: '0.80', cached: '0.08', output: '4.00' },
  { name: 'meetkai:functionary-medium-v3.1', input: '0.90', cached: '0.45', output: '2.70' },
  { name: 'anthropic/claude-3-7-sonnet', input: '3.00', cached: '0.30', output: '15.00' },
  { name: 'google/gemini-2.0-flash', input: '0.10', cached: '0.025', output: '0.40' },
  { name: 'meta/llama-3.3-70b-instruct', input: '0.59', cached: '0.59', output: '0.79' },
  { name: 'openai/o3-mini', input: '1.10', cached: '0.55', output: '4.40' },
  { name: 'mistral/mistral-small-3.1', input: '0.10', cached: '0.10', output: '0.30' },
  { name: 'meetkai:functionary-small-v3.2', input: '0.06', cached: '0.03', output: '0.24' },
  { name: 'openai/gpt-4o-audio-preview', input: '2.50', cached: '1.25', output: '10.00', audio: true },
  { name: 'deepseek/deepseek-v3', input: '0.27', cached: '0.07', output: '1.10' },
  { name: 'google/gemini-1.5-pro', input: '1.25', cached: '0.3125', output: '5.00' },
  { name: 'qwen/qwen-2.5-72b-instruct', input: '0.35', cached: '0.35', output: '0.40' },
  { name: 'openai/o1', input: '15.00', cached: '7.50', output: '60.00' },
  { name: 'mistral/mistral-large-2411', input: '2.00', cached: '2.00', output: '6.00' },
  { name: 'cohere/command-r-plus', input: '2.50', cached: '2.50', output: '10.00' },
  { name: 'meta/llama-3.1-8b-instruct', input: '0.05', cached: '0.05', output: '0.08' },
  { name: 'anthropic/claude-3-opus', input: '15.00', cached: '1.50', output: '75.00' },
];

/** The org and keys the service issued, in the order of {@link ORGS}. */
export interface TenantKeys {
  orgId: string;
  keys: Array<{ id: string; teamId: string | null }>;
}

/** What an application behind one key sends with every request: its project and service tier. */
interface KeyProfile {
  id: string;
  teamId: string | null;
  projectId: string | null;
  serviceTier: string | null;
}

/** One completion record, as stored (created_at in Unix seconds). Reused between calls of the emitter. */
export interface GeneratedRecord {
  orgId: string;
  id: string;
  apiKeyId: string;
  teamId: string | null;
  userId: string;
  projectId: string | null;
  model: string;
  inputTokens: number;
  outputTokens: number;
  inputCachedTokens: number;
  inputAudioTokens: number;
  outputAudioTokens: number;
  batch: boolean;
  serviceTier: string | null;
  costNano: bigint;
  createdAt: number;
}

interface User {
  id: string;
  orgId: string;
  /** The key the user's requests mostly come through, and an occasional second one (e.g. staging). */
  mainKey: KeyProfile;
  otherKey: KeyProfile;
  models: number[];
  modelSampler: WeightedSampler;
  batchShare: number;
}

const MINUTES_PER_DAY = 1440;

/**
 * Traffic shaped like a gateway's: every end user belongs to one org, mostly uses one key (95%;
 * the rest through a second key of the org) and one to three models; model popularity and user
 * activity are skewed; a key's application sends its own project and service tier; requests
 * follow a daily cycle (peak 15:00 UTC, trough 03:00) with quieter weekends. Deterministic for a
 * given seed.
 */
export class Traffic {
  readonly users: User[] = [];
  private readonly userSampler: WeightedSampler;
  private readonly prices: TokenPrices[];
  private readonly random: Random;

  constructor(tenants: TenantKeys[], seed = 20251121) {
    const random = new Random(seed);
    this.random = random;
    this.prices = MODELS.map((m) => ({
      inputPerMtokNano: parseDecimalToNano(m.input),
      cachedInputPerMtokNano: parseDecimalToNano(m.cached),
      outputPerMtokNano: parseDecimalToNano(m.output),
    }));
    const popularity = zipfWeights(MODELS.length, 1.2);
    const orgSampler = new WeightedSampler(ORGS.map((o) => o.share));
    const profiles = tenants.map((tenant, t) =>
      tenant.keys.map(
        (key): KeyProfile => ({
          ...key,
          projectId: random.chance(0.6) ? `proj-${t + 1}-${random.int(1, 4)}` : null,
          serviceTier: random.chance(0.8) ? 'default' : random.chance(0.5) ? null : 'flex',
        }),
      ),
    );
    const activity: number[] = [];
    for (let u = 0; u < USERS; u++) {
      const t = orgSampler.draw(random);
      const keySampler = new WeightedSampler(zipfWeights(profiles[t].length, 0.8));
      const models = pickDistinct(random, popularity, random.pick([1, 1, 2, 2, 2, 3, 3]));
      this.users.push({
        id: `user_${String(u + 1).padStart(4, '0')}`,
        orgId: tenants[t].orgId,
        mainKey: profiles[t][keySampler.draw(random)],
        otherKey: profiles[t][keySampler.draw(random)],
        models,
        modelSampler: new WeightedSampler(models.map((_m, i) => [1, 0.3, 0.1][i])),
        batchShare: random.chance(0.1) ? 0.5 : 0,
      });
      activity.push(random.logNormal(1, 1));
    }
    this.userSampler = new WeightedSampler(activity);
  }

  /**
   * Yields `count` records over [from, to) (Unix seconds, whole minutes) in time order, spread by
   * the daily cycle; ids are `chatcmpl-<prefix><sequence>`. The same object is yielded each time.
   */
  *records(count: number, from: number, to: number, idPrefix: string): Generator<GeneratedRecord> {
    const minutes = Math.floor((to - from) / 60);
    const weights = new Float64Array(minutes);
    let total = 0;
    for (let m = 0; m < minutes; m++) {
      weights[m] = intensity(from + m * 60);
      total += weights[m];
    }
    const record = {} as GeneratedRecord;
    let emitted = 0;
    let expected = 0;
    for (let m = 0; m < minutes; m++) {
      expected += (count * weights[m]) / total;
      const upTo = m === minutes - 1 ? count : Math.min(count, Math.round(expected));
      for (; emitted < upTo; emitted++) {
        this.fill(record, from + m * 60 + Math.floor(this.random.next() * 60), `chatcmpl-${idPrefix}${emitted.toString(36)}`);
        yield record;
      }
    }
  }

  private fill(r: GeneratedRecord, createdAt: number, id: string): void {
    const random = this.random;
    const user = this.users[this.userSampler.draw(random)];
    const key = random.chance(0.95) ? user.mainKey : user.otherKey;
    const modelIndex = user.models[user.modelSampler.draw(random)];
    const model = MODELS[modelIndex];
    const input = Math.min(200_000, Math.max(1, Math.round(random.logNormal(700, 1.1))));
    const output = Math.min(32_000, Math.max(1, Math.round(random.logNormal(220, 0.9))));
    const cached = random.chance(0.4) ? Math.floor(input * (0.3 + 0.65 * random.next())) : 0;
    r.orgId = user.orgId;
    r.id = id;
    r.apiKeyId = key.id;
    r.teamId = key.teamId;
    r.userId = user.id;
    r.projectId = key.projectId;
    r.model = model.name;
    r.inputTokens = input;
    r.outputTokens = output;
    r.inputCachedTokens = cached;
    r.inputAudioTokens = model.audio ? Math.round(random.logNormal(300, 0.7)) : 0;
    r.outputAudioTokens = model.audio ? Math.round(random.logNormal(200, 0.7)) : 0;
    r.batch = user.batchShare > 0 && random.chance(user.batchShare);
    r.serviceTier = key.serviceTier;
    r.costNano = computeCostNano({ inputTokens: input, inputCachedTokens: cached, outputTokens: output }, this.prices[modelIndex]);
    r.createdAt = createdAt;
  }
}

/** Relative request rate at a time: a daily cycle peaking at 15:00 UTC, weekends at 60%. */
function intensity(unixSeconds: number): number {
  const minuteOfDay = Math.floor(unixSeconds / 60) % MINUTES_PER_DAY;
  const daily = 1 + 0.75 * Math.cos((2 * Math.PI * (minuteOfDay - 15 * 60)) / MINUTES_PER_DAY);
  const weekday = new Date(unixSeconds * 1000).getUTCDay();
  return daily * (weekday === 0 || weekday === 6 ? 0.6 : 1);
}

import { int, pickWeighted } from '../common/random';
import { Role } from '../auth/role';
import type { IngestRecordDto } from '../usage/dto/ingest.dto';

/**
 * What `npm run demo` puts in a database: a few orgs of different sizes, their keys and end users,
 * a price book with skewed model popularity, and completion records with a daily cycle. Pure data
 * and generators (seeded, so every run makes the same shape); loading is in fill-demo.ts.
 */

/** Demo orgs are recognised by this suffix (the demo refuses to load twice). */
export const DEMO_SUFFIX = ' (demo)';

export interface DemoModel {
  model: string;
  /** Share of requests (relative). */
  weight: number;
  /** Typical input and output tokens of a request. */
  input: number;
  output: number;
  /** Major units per million tokens (uncached input, cached input, output); none: unpriced. */
  price?: { input: string; cached: string; output: string };
}

export const DEMO_MODELS: readonly DemoModel[] = [
  { model: 'meetkai:functionary-urdu-mini-pak', weight: 46, input: 900, output: 220, price: { input: '0.15', cached: '0.075', output: '0.60' } },
  { model: 'meetkai:functionary-medium', weight: 24, input: 1400, output: 380, price: { input: '0.50', cached: '0.25', output: '1.50' } },
  { model: 'gpt-4o-mini', weight: 15, input: 1100, output: 300, price: { input: '0.15', cached: '0.075', output: '0.60' } },
  { model: 'gpt-4o', weight: 9, input: 2200, output: 550, price: { input: '2.50', cached: '1.25', output: '10.00' } },
  { model: 'claude-sonnet-4', weight: 5, input: 2600, output: 700, price: { input: '3.00', cached: '0.30', output: '15.00' } },
  // Never priced: the cost report lists it under unpriced_models.
  { model: 'meetkai:experimental-preview', weight: 1, input: 700, output: 150 },
];

export interface DemoKey {
  name: string;
  role: Role.OrgAdmin | Role.Member;
  teamId: string | null;
  /** Share of the org's traffic (relative); 0 for keys that only read. */
  traffic: number;
  projectId: string | null;
  /** Fraction of this key's requests sent as batch jobs. */
  batch: number;
}

export interface DemoOrg {
  slug: string;
  name: string;
  /** Requests on an average weekday at scale 1. */
  requestsPerDay: number;
  users: number;
  keys: DemoKey[];
}

const member = (name: string, teamId: string, traffic: number, projectId: string, batch = 0): DemoKey => ({
  name,
  role: Role.Member,
  teamId,
  traffic,
  projectId,
  batch,
});
const admin = (name: string): DemoKey => ({ name, role: Role.OrgAdmin, teamId: null, traffic: 0, projectId: null, batch: 0 });

export const DEMO_ORGS: readonly DemoOrg[] = [
  {
    slug: 'acme',
    name: `Acme Corp${DEMO_SUFFIX}`,
    requestsPerDay: 1400,
    users: 40,
    keys: [admin('acme-admin'), member('acme-search', 'search', 5, 'proj_search'), member('acme-support', 'support', 3, 'proj_helpdesk'), member('acme-etl', 'data', 2, 'proj_etl', 0.8)],
  },
  {
    slug: 'globex',
    name: `Globex${DEMO_SUFFIX}`,
    requestsPerDay: 650,
    users: 20,
    keys: [admin('globex-admin'), member('globex-assistant', 'product', 3, 'proj_assistant'), member('globex-labs', 'research', 1, 'proj_labs', 0.3)],
  },
  {
    slug: 'initech',
    name: `Initech${DEMO_SUFFIX}`,
    requestsPerDay: 220,
    users: 8,
    keys: [admin('initech-admin'), member('initech-bot', 'ops', 1, 'proj_tps')],
  },
];

export interface DemoPeriod {
  label: string;
  /** Unix seconds, [start, end). */
  start: number;
  end: number;
}

const DAY = 86400;
const HOUR = 3600;
/** January 2024: the month the API document's examples query (start_time 1704067200). */
export const JANUARY_2024: DemoPeriod = { label: 'January 2024', start: 1704067200, end: 1706745600 };

/** The month the examples point at, and the current month up to now (budgets read live spend). */
export function demoPeriods(now: number): DemoPeriod[] {
  const date = new Date(now * 1000);
  const monthStart = Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), 1) / 1000;
  const current = { label: `${date.toISOString().slice(0, 7)} to date`, start: Math.max(monthStart, JANUARY_2024.end), end: now };
  return current.end > current.start ? [JANUARY_2024, current] : [JANUARY_2024];
}

/** Relative traffic of an hour of the day (UTC): quiet nights, a peak mid-afternoon. */
export function hourWeight(hour: number): number {
  return 0.2 + Math.exp(-((hour - 15) ** 2) / (2 * 3.5 ** 2));
}
const DAY_WEIGHT = Array.from({ length: 24 }, (_v, h) => hourWeight(h)).reduce((a, b) => a + b, 0);

/** Weekends carry about half the traffic. */
const weekdayFactor = (dayStart: number) => ([0, 6].includes(new Date(dayStart * 1000).getUTCDay()) ? 0.55 : 1);

export interface DemoTraffic {
  org: DemoOrg;
  /** Public ids of the org's keys, by key name. */
  keyIds: Map<string, string>;
}

/**
 * Completion records of one org over a period: hourly volumes follow the daily cycle, weekends and
 * a slow growth over the month; models, keys, users and sizes are drawn with skewed weights.
 */
export function generateRecords(rand: () => number, traffic: DemoTraffic, period: DemoPeriod, scale: number, nextId: () => string): IngestRecordDto[] {
  const { org, keyIds } = traffic;
  const keys = org.keys.filter((k) => k.traffic > 0).map((k) => ({ value: k, weight: k.traffic }));
  const users = Array.from({ length: org.users }, (_v, i) => ({ value: `${org.slug}_user_${String(i + 1).padStart(3, '0')}`, weight: 1 / (i + 1) }));
  const models = DEMO_MODELS.map((m) => ({ value: m, weight: m.weight }));
  const days = Math.ceil((period.end - period.start) / DAY);
  const records: IngestRecordDto[] = [];
  for (let hourStart = Math.floor(period.start / HOUR) * HOUR; hourStart < period.end; hourStart += HOUR) {
    const dayIndex = Math.floor((hourStart - period.start) / DAY);
    const growth = 0.9 + (0.2 * dayIndex) / Math.max(1, days);
    const expected = (org.requestsPerDay * scale * hourWeight(new Date(hourStart * 1000).getUTCHours()) * weekdayFactor(hourStart) * growth) / DAY_WEIGHT;
    const count = Math.floor(expected * (0.8 + 0.4 * rand()) + rand());
    for (let i = 0; i < count; i++) {
      const createdAt = hourStart + int(rand, HOUR);
      if (createdAt < period.start || createdAt >= period.end) continue;
      const key = pickWeighted(rand, keys);
      const model = pickWeighted(rand, models);
      const longTail = rand() < 0.08 ? 4 : 1;
      const input = Math.max(1, Math.round(model.input * (0.3 + 1.4 * rand()) * longTail));
      const batch = rand() < key.batch;
      records.push({
        id: nextId(),
        api_key_id: keyIds.get(key.name) as string,
        model: model.model,
        input_tokens: input,
        input_cached_tokens: rand() < 0.4 ? Math.floor(input * (0.2 + 0.6 * rand())) : 0,
        output_tokens: Math.max(1, Math.round(model.output * (0.2 + 1.6 * rand()) * longTail)),
        user_id: rand() < 0.85 ? pickWeighted(rand, users) : null,
        project_id: key.projectId,
        batch,
        service_tier: batch ? 'flex' : rand() < 0.95 ? 'default' : 'priority',
        created_at: createdAt,
      });
    }
  }
  return records;
}

export type BudgetPeriod = 'daily' | 'weekly' | 'monthly';
export const BUDGET_PERIODS: readonly BudgetPeriod[] = ['daily', 'weekly', 'monthly'];

export interface BudgetWindow {
  start: Date;
  end: Date;
}

export const DEFAULT_TIME_ZONE = 'UTC';

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;

/** Whether `name` is an IANA time zone this runtime (full ICU) knows; offsets like `+01:00` are refused. */
export function isKnownTimeZone(name: string): boolean {
  if (!/^[A-Za-z][A-Za-z0-9_+\-/]{0,99}$/.test(name)) return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

let zoneSpellings: Map<string, string> | undefined;

/**
 * A known time zone spelled as the time zone database spells it when only its letter case differs
 * (`utc` → `UTC`, `europe/amsterdam` → `Europe/Amsterdam`): the runtime accepts any case, and a
 * budget shows and compares the name it stores. Any other name, an alias included, is kept as given.
 */
export function canonicalTimeZoneCase(name: string): string {
  zoneSpellings ??= new Map([...Intl.supportedValuesOf('timeZone'), DEFAULT_TIME_ZONE].map((zone) => [zone.toLowerCase(), zone]));
  return zoneSpellings.get(name.toLowerCase()) ?? name;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** The wall-clock time of an instant in a zone, as if it were UTC (ms; whole seconds). */
function wallClock(timeZone: string, ms: number): number {
  const p: Record<string, number> = {};
  for (const part of formatter(timeZone).formatToParts(new Date(ms))) if (part.type !== 'literal') p[part.type] = Number(part.value);
  return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
}

/** The zone's offset from UTC at an instant, in ms (whole seconds). */
export function zoneOffsetMs(timeZone: string, ms: number): number {
  const whole = Math.floor(ms / 1000) * 1000;
  return wallClock(timeZone, whole) - whole;
}

/** The local calendar date of an instant, as the UTC midnight of that date (ms). */
function localDate(timeZone: string, ms: number): number {
  const wall = wallClock(timeZone, ms);
  return wall - (((wall % DAY_MS) + DAY_MS) % DAY_MS);
}

/**
 * The first instant of the local date `date` (given as its UTC midnight, ms): local midnight, or
 * where midnight does not exist (a clock change at 00:00), the first instant of that date.
 */
export function localMidnight(timeZone: string, date: number): number {
  let t = date - zoneOffsetMs(timeZone, date);
  t = date - zoneOffsetMs(timeZone, t);
  if (wallClock(timeZone, t) === date) return t;
  // Midnight is skipped: the first second whose local date is `date` (local dates only grow within ±30 h).
  let lo = Math.floor((date - 30 * HOUR_MS) / 1000);
  let hi = Math.floor((date + 30 * HOUR_MS) / 1000);
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (localDate(timeZone, mid * 1000) >= date) hi = mid;
    else lo = mid + 1;
  }
  return lo * 1000;
}

/**
 * The window of `period` holding `at`, in `timeZone` (IANA): days start at local midnight, weeks on
 * Monday, months on the 1st, across daylight-saving changes (a local day lasts 23, 24 or 25 hours).
 * The end is exclusive and is when the budget resets.
 */
export function budgetWindow(period: BudgetPeriod, at: Date, timeZone: string = DEFAULT_TIME_ZONE): BudgetWindow {
  const date = timeZone === 'UTC' ? at.getTime() - (((at.getTime() % DAY_MS) + DAY_MS) % DAY_MS) : localDate(timeZone, at.getTime());
  const day = new Date(date);
  const y = day.getUTCFullYear();
  const m = day.getUTCMonth();
  const d = day.getUTCDate();
  let from: number;
  let to: number;
  switch (period) {
    case 'daily':
      from = Date.UTC(y, m, d);
      to = Date.UTC(y, m, d + 1);
      break;
    case 'weekly': {
      const sinceMonday = (day.getUTCDay() + 6) % 7;
      from = Date.UTC(y, m, d - sinceMonday);
      to = Date.UTC(y, m, d - sinceMonday + 7);
      break;
    }
    case 'monthly':
      from = Date.UTC(y, m, 1);
      to = Date.UTC(y, m + 1, 1);
      break;
  }
  if (timeZone === 'UTC') return { start: new Date(from), end: new Date(to) };
  return { start: new Date(localMidnight(timeZone, from)), end: new Date(localMidnight(timeZone, to)) };
}

/** An instant as ISO 8601 local time with the zone's offset (`Z` in UTC), e.g. `2026-03-29T00:00:00+01:00`. */
export function formatInstant(date: Date, timeZone: string = DEFAULT_TIME_ZONE): string {
  if (timeZone === 'UTC') return date.toISOString().replace('.000Z', 'Z');
  const offset = zoneOffsetMs(timeZone, date.getTime());
  const local = new Date(Math.floor(date.getTime() / 1000) * 1000 + offset).toISOString().slice(0, 19);
  const abs = Math.abs(offset) / 60_000;
  if (abs % 1 !== 0) return date.toISOString().replace('.000Z', 'Z'); // an offset of seconds (pre-1970 local mean time)
  const sign = offset < 0 ? '-' : '+';
  return `${local}${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}

/** ISO 8601 interval, e.g. `2026-11-16T00:00:00Z/2026-11-23T00:00:00Z` or with the zone's offsets. */
export function formatWindow(window: BudgetWindow, timeZone: string = DEFAULT_TIME_ZONE): string {
  return `${formatInstant(window.start, timeZone)}/${formatInstant(window.end, timeZone)}`;
}

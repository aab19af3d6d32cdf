import { budgetWindow, canonicalTimeZoneCase, formatWindow, isKnownTimeZone } from './budget-window';

const at = (iso: string) => new Date(iso);
const window = (period: 'daily' | 'weekly' | 'monthly', iso: string) => formatWindow(budgetWindow(period, at(iso)));

describe('budgetWindow (UTC)', () => {
  it('daily windows run 00:00 to 00:00, edges included/excluded exactly', () => {
    expect(window('daily', '2026-11-21T13:45:00Z')).toBe('2026-11-21T00:00:00Z/2026-11-22T00:00:00Z');
    expect(window('daily', '2026-11-21T00:00:00Z')).toBe('2026-11-21T00:00:00Z/2026-11-22T00:00:00Z');
    expect(window('daily', '2026-11-21T23:59:59.999Z')).toBe('2026-11-21T00:00:00Z/2026-11-22T00:00:00Z');
  });

  it('weekly windows start on Monday', () => {
    expect(window('weekly', '2026-11-21T10:00:00Z')).toBe('2026-11-16T00:00:00Z/2026-11-23T00:00:00Z'); // Saturday
    expect(window('weekly', '2026-11-16T00:00:00Z')).toBe('2026-11-16T00:00:00Z/2026-11-23T00:00:00Z'); // Monday 00:00
    expect(window('weekly', '2026-11-22T23:59:59Z')).toBe('2026-11-16T00:00:00Z/2026-11-23T00:00:00Z'); // Sunday night
    expect(window('weekly', '2026-11-23T00:00:00Z')).toBe('2026-11-23T00:00:00Z/2026-11-30T00:00:00Z');
    expect(window('weekly', '2027-01-01T12:00:00Z')).toBe('2026-12-28T00:00:00Z/2027-01-04T00:00:00Z'); // across a year end
  });

  it('monthly windows run from the 1st, across month ends, leap years and year ends', () => {
    expect(window('monthly', '2026-11-30T23:59:59Z')).toBe('2026-11-01T00:00:00Z/2026-12-01T00:00:00Z');
    expect(window('monthly', '2026-12-31T23:59:59Z')).toBe('2026-12-01T00:00:00Z/2027-01-01T00:00:00Z');
    expect(window('monthly', '2028-02-29T12:00:00Z')).toBe('2028-02-01T00:00:00Z/2028-03-01T00:00:00Z');
    expect(window('monthly', '2027-02-28T12:00:00Z')).toBe('2027-02-01T00:00:00Z/2027-03-01T00:00:00Z');
    expect(window('daily', '2028-02-29T12:00:00Z')).toBe('2028-02-29T00:00:00Z/2028-03-01T00:00:00Z');
  });
});

describe('budgetWindow in a time zone', () => {
  const w = (period: 'daily' | 'weekly' | 'monthly', at: string, zone: string) => formatWindow(budgetWindow(period, new Date(at), zone), zone);

  it('starts days at local midnight across daylight-saving changes (23 h and 25 h days)', () => {
    expect(w('daily', '2026-03-29T12:00:00Z', 'Europe/Amsterdam')).toBe('2026-03-29T00:00:00+01:00/2026-03-30T00:00:00+02:00');
    expect(w('daily', '2026-10-25T23:59:59Z', 'Europe/Amsterdam')).toBe('2026-10-26T00:00:00+01:00/2026-10-27T00:00:00+01:00');
    expect(w('daily', '2026-10-24T22:00:00Z', 'Europe/Amsterdam')).toBe('2026-10-25T00:00:00+02:00/2026-10-26T00:00:00+01:00');
    expect(w('daily', '2026-10-24T21:59:59Z', 'Europe/Amsterdam')).toBe('2026-10-24T00:00:00+02:00/2026-10-25T00:00:00+02:00');
    expect(w('daily', '2026-03-08T12:00:00Z', 'America/New_York')).toBe('2026-03-08T00:00:00-05:00/2026-03-09T00:00:00-04:00');
  });

  it('starts weeks on local Monday and months on the local 1st; half- and quarter-hour offsets', () => {
    expect(w('weekly', '2026-03-29T21:59:59Z', 'Europe/Amsterdam')).toBe('2026-03-23T00:00:00+01:00/2026-03-30T00:00:00+02:00');
    expect(w('weekly', '2026-03-29T22:00:00Z', 'Europe/Amsterdam')).toBe('2026-03-30T00:00:00+02:00/2026-04-06T00:00:00+02:00');
    expect(w('monthly', '2026-03-31T18:30:00Z', 'Asia/Kolkata')).toBe('2026-04-01T00:00:00+05:30/2026-05-01T00:00:00+05:30');
    expect(w('monthly', '2026-03-31T18:29:59Z', 'Asia/Kolkata')).toBe('2026-03-01T00:00:00+05:30/2026-04-01T00:00:00+05:30');
    expect(w('daily', '2026-03-29T18:15:00Z', 'Asia/Kathmandu')).toBe('2026-03-30T00:00:00+05:45/2026-03-31T00:00:00+05:45');
  });

  it('starts a day whose midnight is skipped at its first local instant', () => {
    // America/Santiago moves from 00:00 to 01:00 on 2026-09-06.
    expect(w('daily', '2026-09-06T12:00:00Z', 'America/Santiago')).toBe('2026-09-06T01:00:00-03:00/2026-09-07T00:00:00-03:00');
  });

  it('knows IANA zones and refuses anything else', () => {
    expect(isKnownTimeZone('Europe/Amsterdam')).toBe(true);
    expect(isKnownTimeZone('UTC')).toBe(true);
    for (const bad of ['Mars/Olympus', '+01:00', 'UTC+1 ', '', '../etc']) expect(isKnownTimeZone(bad)).toBe(false);
  });
});

describe('canonicalTimeZoneCase', () => {
  it('spells a known zone as the database does when only its case differs; anything else as given', () => {
    expect(canonicalTimeZoneCase('utc')).toBe('UTC');
    expect(canonicalTimeZoneCase('UTC')).toBe('UTC');
    expect(canonicalTimeZoneCase('europe/amsterdam')).toBe('Europe/Amsterdam');
    expect(canonicalTimeZoneCase('PACIFIC/CHATHAM')).toBe('Pacific/Chatham');
    expect(canonicalTimeZoneCase('Asia/Kolkata')).toBe('Asia/Kolkata');
    expect(canonicalTimeZoneCase('US/Pacific')).toBe('US/Pacific');
  });
});

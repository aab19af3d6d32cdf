import { budgetWindow, formatWindow } from './budget-window';

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

export type BudgetPeriod = 'daily' | 'weekly' | 'monthly';
export const BUDGET_PERIODS: readonly BudgetPeriod[] = ['daily', 'weekly', 'monthly'];

export interface BudgetWindow {
  start: Date;
  end: Date;
}

const DAY_MS = 86_400_000;

/**
 * The UTC window of `period` holding `at`: days start at 00:00, weeks on Monday 00:00, months on
 * the 1st. The end is exclusive and is when the budget resets.
 */
export function budgetWindow(period: BudgetPeriod, at: Date): BudgetWindow {
  const y = at.getUTCFullYear();
  const m = at.getUTCMonth();
  const d = at.getUTCDate();
  switch (period) {
    case 'daily': {
      const start = Date.UTC(y, m, d);
      return { start: new Date(start), end: new Date(start + DAY_MS) };
    }
    case 'weekly': {
      const sinceMonday = (at.getUTCDay() + 6) % 7;
      const start = Date.UTC(y, m, d - sinceMonday);
      return { start: new Date(start), end: new Date(start + 7 * DAY_MS) };
    }
    case 'monthly':
      return { start: new Date(Date.UTC(y, m, 1)), end: new Date(Date.UTC(y, m + 1, 1)) };
  }
}

/** ISO 8601 interval, e.g. `2026-11-16T00:00:00Z/2026-11-23T00:00:00Z`. */
export function formatWindow(window: BudgetWindow): string {
  const iso = (date: Date) => date.toISOString().replace('.000Z', 'Z');
  return `${iso(window.start)}/${iso(window.end)}`;
}

/** A PUT body of a cost budget (limit in major units) alerting at 50 % and blocking at 100 %; `extra` overrides. */
export function costBudget(limit: number, extra: Record<string, unknown> = {}) {
  return {
    period: 'daily',
    limit_kind: 'cost',
    limit,
    thresholds: [
      { pct: 50, action: 'alert' },
      { pct: 100, action: 'block' },
    ],
    ...extra,
  };
}

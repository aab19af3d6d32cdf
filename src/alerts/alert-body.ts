import { unixSeconds } from '../common/unix-time';
import { Threshold } from '../budgets/budget.entity';
import { Evaluation } from '../budgets/budget-evaluation';
import { formatWindow } from '../budgets/budget-window';
import { toBudgetDto } from '../budgets/budget.mapper';
import { BudgetDto } from '../budgets/dto/budget.dto';

export const ALERT_EVENT_TYPE = 'budget.threshold.crossed';

/** The webhook body of SPEC §5. */
export interface AlertEvent {
  id: string;
  type: typeof ALERT_EVENT_TYPE;
  /** Unix seconds. */
  created_at: number;
  data: {
    /** The budget object with its spend at the time of the alert. */
    budget: BudgetDto;
    threshold: Threshold;
    /** The window the threshold was crossed in (ISO 8601 interval). */
    window: string;
  };
}

/** The exact bytes every attempt of this alert sends (serialised once, stored with the alert). */
export function alertBody(id: string, createdAt: Date, evaluation: Evaluation, threshold: Threshold): string {
  const event: AlertEvent = {
    id,
    type: ALERT_EVENT_TYPE,
    created_at: unixSeconds(createdAt),
    data: {
      budget: toBudgetDto(evaluation, 'full'), // the receiver reads its own URL
      threshold: { pct: threshold.pct, action: threshold.action },
      window: formatWindow(evaluation.window),
    },
  };
  return JSON.stringify(event);
}

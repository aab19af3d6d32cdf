import { Alert } from '../alerts/alert.entity';
import { EvaluationRequest } from '../alerts/evaluation-request.entity';
import { WebhookDelivery } from '../alerts/webhook-delivery.entity';
import { ApiKey } from '../auth/api-key.entity';
import { Org } from '../auth/org.entity';
import { Budget } from '../budgets/budget.entity';
import { ReservationFence } from '../reservations/reservation-fence.entity';
import { Reservation } from '../reservations/reservation.entity';
import { CompletionRecord } from '../usage/entities/completion-record.entity';
import { ModelPrice } from '../usage/entities/model-price.entity';
import { UsageRollupDay, UsageRollupDayByKey, UsageRollupHour, UsageRollupHourByKey, UsageRollupMinute } from '../usage/entities/usage-rollup.entity';

/** Every entity, listed once; the data source, the CLI and the drift check use this list. */
export const ENTITIES = [Org, ApiKey, CompletionRecord, ModelPrice, UsageRollupMinute, UsageRollupHour, UsageRollupDay, UsageRollupHourByKey, UsageRollupDayByKey, Budget, Alert, WebhookDelivery, EvaluationRequest, Reservation, ReservationFence];

import { ApiProperty, ApiSchema } from '@nestjs/swagger';
import { ThresholdResultDto } from '../../budgets/dto/budget.dto';
import { IntField, StringField } from '../../common/validation';
import { ALERT_EVENT_TYPE, ALERT_EVENT_TYPES, AlertEventType } from '../alert-body';
import { DELIVERY_STATUSES, DELIVERY_TRIGGERS, DeliveryStatus, DeliveryTrigger } from '../webhook-delivery.entity';
import { ID_PATTERN } from '../../common/ids';


@ApiSchema({ name: 'WebhookDelivery', description: 'One webhook delivery attempt of a threshold alert' })
export class WebhookDeliveryDto {
  @ApiProperty({ example: 'dlv_7cVt3LmQ4xWv9RkP3sZc6NbD' })
  id: string;

  @ApiProperty({ enum: ['llm.budget.webhook_delivery'], example: 'llm.budget.webhook_delivery' })
  object: 'llm.budget.webhook_delivery';

  @ApiProperty({ example: 'bud_4kQ9mW2pL8xYc4RtV7bN1sDa' })
  budget_id: string;

  @ApiProperty({ example: 'alrt_2hYt2LmQ4xWv9RkP3sZc6NbQ', description: 'The alert: the `webhook-id` header and the body\'s `id`, the same on every attempt' })
  alert_id: string;

  @ApiProperty({ enum: ALERT_EVENT_TYPES, enumName: 'WebhookEventType', example: ALERT_EVENT_TYPE })
  event_type: AlertEventType;

  @ApiProperty({ type: ThresholdResultDto, description: 'The threshold that was crossed (or, for `budget.threshold.resolved`, stopped blocking)' })
  threshold: ThresholdResultDto;

  @ApiProperty({ description: 'The budget window of the crossing (ISO 8601 interval)', example: '2026-11-16T00:00:00Z/2026-11-23T00:00:00Z' })
  window: string;

  @ApiProperty({ enum: DELIVERY_TRIGGERS, enumName: 'WebhookDeliveryTrigger', description: '`alert`: the crossing\'s own delivery; `redelivery`: asked for through the API', example: 'alert' })
  trigger: DeliveryTrigger;

  @ApiProperty({ type: 'integer', description: 'Attempt number within its sequence (the crossing\'s, or one redelivery\'s), from 1', example: 1 })
  attempt: number;

  @ApiProperty({ enum: DELIVERY_STATUSES, enumName: 'WebhookDeliveryStatus', description: '`pending`: queued, not attempted yet', example: 'succeeded' })
  status: DeliveryStatus;

  @ApiProperty({ type: 'integer', nullable: true, description: 'HTTP status the receiver answered, or null (no answer)', example: 200 })
  status_code: number | null;

  @ApiProperty({ type: String, nullable: true, description: 'Why the attempt failed (network error, timeout, refused target, HTTP status)', example: null })
  error: string | null;

  @ApiProperty({ type: 'integer', nullable: true, description: 'Milliseconds until the response head arrived (or the attempt ended)', example: 84 })
  latency_ms: number | null;

  @ApiProperty({ type: String, nullable: true, description: 'Where the attempt was sent: in full only for callers who may change the budget, otherwise cut to `scheme://host/…`', example: 'https://hooks.example.com/tally' })
  url: string | null;

  @ApiProperty({ type: 'integer', nullable: true, description: 'When the attempt was made, Unix seconds (null while pending)', example: 1795296000 })
  attempted_at: number | null;

  @ApiProperty({ type: 'integer', nullable: true, description: 'When the next attempt is due after this failed one, Unix seconds; null when none follows', example: null })
  next_retry_at: number | null;

  @ApiProperty({ type: 'integer', description: 'Unix seconds', example: 1795296000 })
  created_at: number;
}

@ApiSchema({ name: 'WebhookDeliveryList' })
export class WebhookDeliveryListDto {
  @ApiProperty({ enum: ['list'], example: 'list' })
  object: 'list';

  @ApiProperty({ type: [WebhookDeliveryDto], description: 'Newest first' })
  data: WebhookDeliveryDto[];

  @ApiProperty({ description: 'Whether older attempts remain: pass `last_id` as `after`', example: false })
  has_more: boolean;

  @ApiProperty({ type: String, nullable: true, example: 'dlv_7cVt3LmQ4xWv9RkP3sZc6NbD' })
  last_id: string | null;
}

export class ListDeliveriesQueryDto {
  @IntField({ description: 'Attempts per page', min: 1, max: 100, default: 20, optional: true, fromQuery: true, example: 20 })
  limit?: number;

  @StringField({ description: 'Cursor: the `last_id` of the previous page', maxLength: 40, pattern: ID_PATTERN, optional: true, example: 'dlv_7cVt3LmQ4xWv9RkP3sZc6NbD' })
  after?: string;

  @StringField({ description: 'Only the attempts of this alert (webhook-id)', maxLength: 40, pattern: ID_PATTERN, optional: true, example: 'alrt_2hYt2LmQ4xWv9RkP3sZc6NbQ' })
  alert_id?: string;
}

export class DeliveryIdParamsDto {
  @StringField({ description: 'Delivery attempt id', example: 'dlv_7cVt3LmQ4xWv9RkP3sZc6NbD', maxLength: 40, pattern: ID_PATTERN })
  deliveryId: string;
}

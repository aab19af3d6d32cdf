import { Controller, Get, Param, Post, Query } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { Auth, Authenticated } from '../auth/auth.decorators';
import { Principal } from '../auth/principal';
import { Role } from '../auth/role';
import { BudgetIdParamsDto } from '../budgets/dto/budget.dto';
import { notFound, Operation } from '../common/api-responses';
import { AFTER_LAST_ID, CursorPaginated } from '../common/sdk-extensions';
import { SdkNamespace } from '../common/sdk-namespace';
import { DELIVERY_IN_PROGRESS_EXAMPLE, DeliveryLogService } from './delivery-log.service';
import { DeliveryIdParamsDto, ListDeliveriesQueryDto, WebhookDeliveryDto, WebhookDeliveryListDto } from './dto/delivery.dto';

/**
 * The webhook delivery log of a budget. Cluster admins and the org admins of the budget's org
 * (its `owner: cluster` budgets included: a redelivery only resends an alert that was already
 * sent to that org's URL, it changes no setting).
 */
@ApiTags('budgets')
@SdkNamespace('llm.budgets')
@Controller('api/v1/llm/budgets')
export class DeliveriesController {
  constructor(private readonly log: DeliveryLogService) {}

  @Get(':budgetId/deliveries')
  @Authenticated(Role.ClusterAdmin, Role.OrgAdmin)
  @Operation({
    summary: 'List webhook deliveries of a budget',
    description:
      'Every threshold-alert delivery attempt of the budget, newest first: when it was made, the HTTP status or the error, the latency, and when the next retry is due. ' +
      'The `alert_id` is the `webhook-id` the receiver saw.',
    response: WebhookDeliveryListDto,
    notFound: notFound('Budget', 'bud_4kQ9mW2pL8xYc4RtV7bN1sDa'),
  })
  @CursorPaginated(AFTER_LAST_ID)
  listDeliveries(@Auth() principal: Principal, @Param() params: BudgetIdParamsDto, @Query() query: ListDeliveriesQueryDto): Promise<WebhookDeliveryListDto> {
    return this.log.list(principal, params.budgetId, query);
  }

  @Post('deliveries/:deliveryId/redeliver')
  @Authenticated(Role.ClusterAdmin, Role.OrgAdmin)
  @Operation({
    summary: 'Redeliver a webhook',
    description:
      'Queues the alert of this delivery again: a new attempt sequence (retried like the first) with the same `webhook-id` and the same body bytes, ' +
      'a fresh `webhook-timestamp` and signature, to the budget\'s current webhook URL. Answers with the new, pending attempt. ' +
      'One delivery of an alert at a time: while its own delivery or an earlier redelivery is still queued, running or waiting for a retry, ' +
      'the answer is a 409 with code `delivery_in_progress`.',
    response: WebhookDeliveryDto,
    accepted: true,
    notFound: notFound('Delivery', 'dlv_7pQ2mW9xL4kY8cR3tV6bN1sD'),
    conflict: {
      description:
        'The alert\'s delivery or an earlier redelivery of it is still under way (`delivery_in_progress`); or the budget has no webhook URL, ' +
        'or its webhook was disabled by a 410 Gone (`conflict`)',
      example: DELIVERY_IN_PROGRESS_EXAMPLE,
    },
  })
  redeliver(@Auth() principal: Principal, @Param() params: DeliveryIdParamsDto): Promise<WebhookDeliveryDto> {
    return this.log.redeliver(principal, params.deliveryId);
  }
}

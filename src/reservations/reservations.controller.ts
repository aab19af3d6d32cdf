import { Body, Controller, Get, Param, Post } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { Authenticated } from '../auth/auth.decorators';
import { Role } from '../auth/role';
import { notFound, Operation } from '../common/api-responses';
import { Idempotent } from '../common/sdk-extensions';
import { SdkNamespace } from '../common/sdk-namespace';
import { CreateReservationDto, ReservationDto, ReservationIdParamsDto } from './dto/reservation.dto';
import { CREATE_RESERVATION_EXAMPLES, RESERVATION_RESPONSE_EXAMPLES, RESERVATION_STATE_EXAMPLES } from './dto/reservation.examples';
import { toReservationDto } from './reservation.mapper';
import { ReservationsService } from './reservations.service';

const RESERVATION_NOT_FOUND = notFound('Reservation', 'res_7mQ2xLp9RkT4vW8cY3nB6sDa', 'No such reservation');

@ApiTags('budgets')
@SdkNamespace('llm.budgets.reservations')
@Controller('api/v1/llm/budgets/reservations')
export class ReservationsController {
  constructor(private readonly reservations: ReservationsService) {}

  @Post()
  @Authenticated(Role.Ingest, Role.ClusterAdmin)
  @Operation({
    summary: 'Reserve budget before a model call',
    description:
      'Holds `input_tokens` + the granted output tokens (priced at the model\'s current price for cost budgets) against every budget of the key, its org, the key\'s team and the end user (`user_id`) that has a `block` ' +
      'threshold, each in its own window (in the budget\'s `timezone`), atomically and all or nothing: for every such budget, committed spend + live holds never exceed its block limit (lowest block pct × limit), whatever the ' +
      'number of API processes. `granted_output_tokens` is what still fits (cap the model call there); below `min_output_tokens` it is denied and nothing is held. ' +
      'A denial is a 200 with `allowed: false`. The same `request_id` (per key) returns the same reservation. Settle it by ingesting the usage record with ' +
      '`reservation_id`, or release it; otherwise its hold stops counting at `expires_at`. A revoked key is never granted: `allowed: false`, ' +
      '`reason: "api_key_revoked"` (as the check answers), with empty `denied_by` and `budgets`. While Redis is down or does not answer, the ' +
      'answer is a 503 `redis_unavailable` with Retry-After within about a second, and nothing is held or stored.',
    body: { type: CreateReservationDto, examples: CREATE_RESERVATION_EXAMPLES },
    response: ReservationDto,
    responseExamples: RESERVATION_RESPONSE_EXAMPLES,
    notFound: notFound('API key', 'key_8hYt2LmQ4xWv9RkP3sZc6NbD', 'No such API key'),
    conflict: 'A reservation with this request_id is still being made by another request; retry',
  })
  @Idempotent()
  async create(@Body() body: CreateReservationDto): Promise<ReservationDto> {
    return toReservationDto(await this.reservations.reserve(body));
  }

  @Get(':reservationId')
  @Authenticated(Role.Ingest, Role.ClusterAdmin)
  @Operation({
    summary: 'Get a reservation',
    description:
      'One reservation, with its decision. `status` reads `expired` once a hold passed its `expires_at` unsettled. Read from PostgreSQL, so it answers while Redis is down.',
    response: ReservationDto,
    responseExamples: { ...RESERVATION_RESPONSE_EXAMPLES, ...RESERVATION_STATE_EXAMPLES },
    notFound: RESERVATION_NOT_FOUND,
  })
  async get(@Param() params: ReservationIdParamsDto): Promise<ReservationDto> {
    return toReservationDto(await this.reservations.get(params.reservationId));
  }

  @Post(':reservationId/release')
  @Authenticated(Role.Ingest, Role.ClusterAdmin)
  @Operation({
    summary: 'Release a reservation',
    description:
      'Frees a live hold (the model call failed or was cancelled). A settled, denied, released or expired reservation is returned unchanged: releasing after the record settled it changes nothing. ' +
      'While Redis is down or does not answer, releasing a live hold is a 503 `redis_unavailable` with Retry-After and changes nothing (retry it; the hold expires by itself otherwise).',
    response: ReservationDto,
    responseExamples: RESERVATION_STATE_EXAMPLES,
    notFound: RESERVATION_NOT_FOUND,
  })
  @Idempotent()
  async release(@Param() params: ReservationIdParamsDto): Promise<ReservationDto> {
    return toReservationDto(await this.reservations.release(params.reservationId));
  }
}

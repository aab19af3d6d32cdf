import { applyDecorators, HttpCode, HttpStatus, Type } from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBadRequestResponse,
  ApiConflictResponse,
  ApiCreatedResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiServiceUnavailableResponse,
} from '@nestjs/swagger';
import { ErrorResponseDto } from './dto/error-response.dto';

interface OperationOptions {
  summary: string;
  description: string;
  /** Success body type, and whether it is a 201 (created) or a 202 (accepted: work was queued). */
  response: Type<unknown>;
  created?: boolean;
  accepted?: boolean;
  /** Extra error answers beyond 400/401/403/503 (which every authenticated operation may give). */
  notFound?: string;
  conflict?: string;
}

/** One decorator per operation: summary, description, success body and the error answers, all in OpenAPI. */
export function Operation(options: OperationOptions) {
  const status = options.created ? HttpStatus.CREATED : options.accepted ? HttpStatus.ACCEPTED : HttpStatus.OK;
  const success = options.created
    ? ApiCreatedResponse({ type: options.response, description: 'Created' })
    : options.accepted
      ? ApiAcceptedResponse({ type: options.response, description: 'Accepted: queued' })
      : ApiOkResponse({ type: options.response, description: 'OK' });
  return applyDecorators(
    ApiOperation({ summary: options.summary, description: options.description }),
    HttpCode(status),
    success,
    ApiBadRequestResponse({ type: ErrorResponseDto, description: 'Invalid request: every bad field is named' }),
    ApiServiceUnavailableResponse({
      type: ErrorResponseDto,
      description: 'A dependency (database or Redis) is unavailable; retry after `Retry-After` seconds',
    }),
    ...(options.notFound ? [ApiNotFoundResponse({ type: ErrorResponseDto, description: options.notFound })] : []),
    ...(options.conflict ? [ApiConflictResponse({ type: ErrorResponseDto, description: options.conflict })] : []),
  );
}

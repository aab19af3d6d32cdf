import { applyDecorators, HttpCode, HttpStatus, Type } from '@nestjs/common';
import { ROUTE_ARGS_METADATA } from '@nestjs/common/constants';
import { RouteParamtypes } from '@nestjs/common/enums/route-paramtypes.enum';
import { ApiBody, ApiOperation, ApiResponse } from '@nestjs/swagger';
import { ErrorResponseDto } from './dto/error-response.dto';
import { AppException, ErrorBody, ErrorCode, ErrorType } from './errors';

/** One realistic body per error status, shown in the OpenAPI document (and Swagger UI) under each error answer. */
export const ERROR_EXAMPLES: Record<number, ErrorBody> = {
  400: AppException.validation([{ param: 'limit', message: 'must not be greater than 1440' }]).body(),
  401: AppException.unauthorized(ErrorCode.InvalidApiKey, 'Invalid or revoked API key').body(),
  403: AppException.forbidden().body(),
  409: AppException.conflict('The request conflicts with the current state').body(),
  413: new AppException(413, ErrorType.InvalidRequest, ErrorCode.PayloadTooLarge, 'The request body is too large').body(),
  429: new AppException(429, ErrorType.RateLimit, ErrorCode.RateLimited, 'Rate limit exceeded for this API key; retry after 1 s', null, undefined).body(),
  431: new AppException(431, ErrorType.InvalidRequest, ErrorCode.ValidationFailed, 'The request line or headers are too large').body(),
  415: new AppException(415, ErrorType.InvalidRequest, ErrorCode.UnsupportedMediaType, 'Unsupported content type: send application/json').body(),
  503: AppException.unavailable(ErrorCode.DatabaseUnavailable, 'The database is unavailable; retry later').body(),
};

export type ResponseHeaders = Record<string, { description: string; schema: { type: 'string' | 'integer'; example: unknown } }>;

const ERROR_HEADERS: Record<number, ResponseHeaders> = {
  401: { 'WWW-Authenticate': { description: 'Always `Bearer`', schema: { type: 'string', example: 'Bearer' } } },
  429: { 'Retry-After': { description: 'Seconds to wait before retrying', schema: { type: 'integer', example: 1 } } },
  503: { 'Retry-After': { description: 'Seconds to wait before retrying', schema: { type: 'integer', example: 5 } } },
};

/** An error answer of an operation: the one error shape, an example body of that status, and its headers. */
export function ApiErrorResponse(status: number, description: string, example: ErrorBody = ERROR_EXAMPLES[status], headers = ERROR_HEADERS[status]) {
  return ApiResponse({ status, description, type: ErrorResponseDto, example, headers });
}

/**
 * Node's HTTP parser refuses a request whose request line and headers together exceed this (its
 * default is 16 KiB). The longest URL the document allows in plain characters (every array filter
 * of the usage report at its maxItems of maxLength values, as repeated keys) is about 57 KiB.
 */
export const MAX_REQUEST_HEAD_BYTES = 64 * 1024;

/** The 431 every operation may answer: it comes from the HTTP layer, before any route runs. */
export const RequestHeadTooLarge = () =>
  ApiErrorResponse(
    431,
    `The request line and headers together exceed ${MAX_REQUEST_HEAD_BYTES / 1024} KiB (long filter lists whose values need percent-encoding can): send fewer or shorter values`,
  );

/** The 404 answer of an operation: when it happens, and an example body. */
export interface NotFound {
  description: string;
  example: ErrorBody;
}

/** A 404 answer about a missing `what` (another tenant's objects are 404s too, never 403s). */
export function notFound(what: string, exampleId: string, description = `No such ${lowerFirstWord(what)} (or it belongs to another tenant)`): NotFound {
  return { description, example: AppException.notFound(what, exampleId).body() };
}

/** "Org" → "org", "API key" stays. */
function lowerFirstWord(text: string): string {
  return /^[A-Z][a-z]/.test(text) ? text[0].toLowerCase() + text.slice(1) : text;
}

/** Named examples of a request or response body (the first is what Swagger UI pre-fills). */
export type Examples = Record<string, { summary: string; value: unknown }>;

interface OperationOptions {
  summary: string;
  description: string;
  /** Success body type, and whether it is a 201 (created) or a 202 (accepted: work was queued). */
  response: Type<unknown>;
  created?: boolean;
  accepted?: boolean;
  /** Examples of the success body. */
  responseExamples?: Examples;
  /** The request body type and its examples (the body type alone is read from `@Body()`). */
  body?: { type: Type<unknown>; examples: Examples };
  /** Extra error answers beyond 400/401/403/503 (which every authenticated operation may give). */
  notFound?: NotFound;
  /** When the operation answers 409, and optionally an example body of that case. */
  conflict?: string | { description: string; example: ErrorBody };
  /** A report: its 503 also covers a query over REPORT_STATEMENT_TIMEOUT_MS (`report_timeout`) and too many reports at once (`reports_busy`). */
  report?: boolean;
}

/**
 * One decorator per operation: summary, description, success body and the error answers, all in
 * OpenAPI. Operations with a JSON body also document 413 and 415 (added by the document builder).
 */
export function Operation(options: OperationOptions) {
  const status = options.created ? HttpStatus.CREATED : options.accepted ? HttpStatus.ACCEPTED : HttpStatus.OK;
  return applyDecorators(
    ApiOperation({ summary: options.summary, description: options.description }),
    HttpCode(status),
    ApiResponse({
      status,
      type: options.response,
      description: options.created ? 'Created' : options.accepted ? 'Accepted: queued' : 'OK',
      ...(options.responseExamples ? { examples: options.responseExamples } : {}),
    }),
    ...(options.body ? [ApiBody({ type: options.body.type, examples: options.body.examples })] : []),
    ApiErrorResponse(HttpStatus.BAD_REQUEST, 'Invalid request: every bad field is named in `details`'),
    ApiErrorResponse(
      HttpStatus.SERVICE_UNAVAILABLE,
      options.report
        ? 'A dependency (database or Redis) is unavailable; retry after `Retry-After` seconds. Or `report_timeout` (no `Retry-After`): ' +
            'the report query ran longer than REPORT_STATEMENT_TIMEOUT_MS; ask for a shorter range, fewer groups or a smaller page. ' +
            'Or `reports_busy` (with `Retry-After`): more reports were running at once than REPORT_CONCURRENCY, or than its share per org, for longer than the report could wait'
        : 'A dependency (database or Redis) is unavailable; retry after `Retry-After` seconds',
    ),
    ...(options.notFound ? [ApiErrorResponse(HttpStatus.NOT_FOUND, options.notFound.description, options.notFound.example)] : []),
    ...(typeof options.conflict === 'string' ? [ApiErrorResponse(HttpStatus.CONFLICT, options.conflict)] : []),
    ...(typeof options.conflict === 'object' ? [ApiErrorResponse(HttpStatus.CONFLICT, options.conflict.description, options.conflict.example)] : []),
    BodyErrors(),
  );
}

/**
 * 413 and 415 for operations that read a JSON body. Parameter decorators run before method
 * decorators, so `@Body()` has left its mark by the time this runs.
 */
function BodyErrors(): MethodDecorator {
  return (target, key, descriptor) => {
    const args: Record<string, unknown> = Reflect.getMetadata(ROUTE_ARGS_METADATA, target.constructor, key) ?? {};
    if (!Object.keys(args).some((arg) => arg.startsWith(`${RouteParamtypes.BODY}:`))) return;
    ApiErrorResponse(HttpStatus.PAYLOAD_TOO_LARGE, 'The body is larger than the server accepts once decompressed (`BODY_LIMIT_BYTES` for batches of records and OTLP exports, 256 KiB for any other body)')(target, key, descriptor);
    ApiErrorResponse(HttpStatus.UNSUPPORTED_MEDIA_TYPE, 'The body is not `application/json`, or its `Content-Encoding` is not gzip (or none)')(target, key, descriptor);
  };
}

import { HttpStatus } from '@nestjs/common';

/** The `type` of an error body (OpenAI-style families). */
export enum ErrorType {
  InvalidRequest = 'invalid_request_error',
  Authentication = 'authentication_error',
  Permission = 'permission_error',
  NotFound = 'not_found_error',
  Conflict = 'conflict_error',
  RateLimit = 'rate_limit_error',
  Unavailable = 'service_unavailable_error',
  Server = 'server_error',
}

/** Machine-readable `code` of an error body. */
export enum ErrorCode {
  ValidationFailed = 'validation_failed',
  InvalidJson = 'invalid_json',
  UnsupportedMediaType = 'unsupported_media_type',
  PayloadTooLarge = 'payload_too_large',
  InvalidOnBehalfOf = 'invalid_on_behalf_of',
  InvalidCursor = 'invalid_cursor',
  MissingApiKey = 'missing_api_key',
  InvalidApiKey = 'invalid_api_key',
  Forbidden = 'forbidden',
  NotFound = 'not_found',
  RouteNotFound = 'route_not_found',
  MethodNotAllowed = 'method_not_allowed',
  Conflict = 'conflict',
  /** A redelivery asked for while the alert's delivery or an earlier redelivery is still under way. */
  DeliveryInProgress = 'delivery_in_progress',
  RateLimited = 'rate_limited',
  BudgetExceeded = 'budget_exceeded',
  DatabaseUnavailable = 'database_unavailable',
  NotReady = 'not_ready',
  RedisUnavailable = 'redis_unavailable',
  ReportTimeout = 'report_timeout',
  /** More usage or cost reports at once than REPORT_CONCURRENCY (or its share per org) let run. */
  ReportsBusy = 'reports_busy',
  Internal = 'internal_error',
}

export interface FieldProblem {
  param: string;
  message: string;
}

export interface ErrorBody {
  error: {
    message: string;
    type: ErrorType;
    code: ErrorCode;
    param: string | null;
    /** Every bad field, for validation errors. */
    details?: FieldProblem[];
  };
}

/** A domain error: carries everything the global filter needs to answer with the SPEC §6 shape. */
export class AppException extends Error {
  constructor(
    readonly status: number,
    readonly type: ErrorType,
    readonly code: ErrorCode,
    message: string,
    readonly param: string | null = null,
    readonly details?: FieldProblem[],
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'AppException';
  }

  body(): ErrorBody {
    const error: ErrorBody['error'] = {
      message: this.message,
      type: this.type,
      code: this.code,
      param: this.param,
    };
    if (this.details) error.details = this.details;
    return { error };
  }

  static validation(problems: FieldProblem[]): AppException {
    const message = problems.map((p) => `${p.param}: ${p.message}`).join('; ');
    return new AppException(
      HttpStatus.BAD_REQUEST,
      ErrorType.InvalidRequest,
      ErrorCode.ValidationFailed,
      message || 'Invalid request',
      problems[0]?.param ?? null,
      problems,
    );
  }

  static badRequest(code: ErrorCode, message: string, param: string | null = null): AppException {
    return new AppException(HttpStatus.BAD_REQUEST, ErrorType.InvalidRequest, code, message, param);
  }

  static unauthorized(code: ErrorCode, message: string): AppException {
    return new AppException(HttpStatus.UNAUTHORIZED, ErrorType.Authentication, code, message, null, undefined, {
      'www-authenticate': 'Bearer',
    });
  }

  static forbidden(message = 'This API key is not allowed to do this'): AppException {
    return new AppException(HttpStatus.FORBIDDEN, ErrorType.Permission, ErrorCode.Forbidden, message);
  }

  static notFound(what: string, id?: string): AppException {
    const message = id === undefined ? `${what} not found` : `${what} '${id}' not found`;
    return new AppException(HttpStatus.NOT_FOUND, ErrorType.NotFound, ErrorCode.NotFound, message);
  }

  static conflict(message: string, param: string | null = null): AppException {
    return new AppException(HttpStatus.CONFLICT, ErrorType.Conflict, ErrorCode.Conflict, message, param);
  }

  static unavailable(code: ErrorCode, message: string, retryAfterSeconds = 5): AppException {
    return new AppException(HttpStatus.SERVICE_UNAVAILABLE, ErrorType.Unavailable, code, message, null, undefined, {
      'retry-after': String(retryAfterSeconds),
    });
  }

  static internal(): AppException {
    return new AppException(
      HttpStatus.INTERNAL_SERVER_ERROR,
      ErrorType.Server,
      ErrorCode.Internal,
      'Internal server error',
    );
  }
}

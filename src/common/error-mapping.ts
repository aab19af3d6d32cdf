import { HttpException, HttpStatus } from '@nestjs/common';
import { isRedisUnavailable } from '../redis/redis-unavailable';
import { AppException, ErrorCode, ErrorType } from './errors';

const PG_UNAVAILABLE_CODES = new Set(['57P01', '57P02', '57P03', '53300', '08000', '08001', '08003', '08004', '08006']);
const NET_UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN']);

/** True for errors meaning "the database cannot be reached right now" (worth a 503 + Retry-After). */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e: any = err, depth = 0; e && depth < 4; e = e.driverError ?? e.cause, depth++) {
    if (typeof e.code === 'string' && (PG_UNAVAILABLE_CODES.has(e.code) || NET_UNAVAILABLE_CODES.has(e.code))) {
      return true;
    }
    const message = typeof e.message === 'string' ? e.message : '';
    if (
      /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|the database system is (starting up|shutting down)|terminating connection/i.test(
        message,
      )
    ) {
      return true;
    }
  }
  return false;
}

const STATUS_TYPES: Record<number, [ErrorType, ErrorCode]> = {
  400: [ErrorType.InvalidRequest, ErrorCode.ValidationFailed],
  401: [ErrorType.Authentication, ErrorCode.InvalidApiKey],
  403: [ErrorType.Permission, ErrorCode.Forbidden],
  404: [ErrorType.NotFound, ErrorCode.RouteNotFound],
  405: [ErrorType.InvalidRequest, ErrorCode.MethodNotAllowed],
  409: [ErrorType.Conflict, ErrorCode.Conflict],
  413: [ErrorType.InvalidRequest, ErrorCode.PayloadTooLarge],
  415: [ErrorType.InvalidRequest, ErrorCode.UnsupportedMediaType],
  429: [ErrorType.RateLimit, ErrorCode.RateLimited],
};

/** Maps anything thrown while serving a request to the one error shape of SPEC §6. */
export function toAppException(err: unknown): { exception: AppException; unexpected: boolean } {
  if (err instanceof AppException) return { exception: err, unexpected: false };

  if (err instanceof HttpException) {
    const status = err.getStatus();
    // Nest re-raises Fastify's body-parser errors as plain HttpExceptions carrying Fastify's message.
    if (status === HttpStatus.BAD_REQUEST && /JSON/.test(err.message)) return invalidJson();
    const [type, code] = STATUS_TYPES[status] ?? [ErrorType.Server, ErrorCode.Internal];
    const message =
      status === HttpStatus.NOT_FOUND ? 'No such route' : status >= 500 ? 'Internal server error' : err.message;
    return { exception: new AppException(status, type, code, message), unexpected: status >= 500 };
  }

  // A body sent with Content-Encoding: gzip that is not gzip (zlib's Z_DATA_ERROR, Z_BUF_ERROR…).
  const zlibCode = (err as { code?: unknown } | null)?.code;
  if (typeof zlibCode === 'string' && zlibCode.startsWith('Z_')) {
    return {
      exception: AppException.validation([{ param: 'Content-Encoding', message: 'the body is not valid gzip data' }]),
      unexpected: false,
    };
  }

  // Errors raised by Fastify itself (body parsing, size limits, content types).
  const e = err as { statusCode?: unknown; code?: unknown; message?: unknown } | null;
  if (e && typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    const status = e.statusCode;
    const [type, code] = STATUS_TYPES[status] ?? [ErrorType.InvalidRequest, ErrorCode.ValidationFailed];
    const fastifyCode = typeof e.code === 'string' ? e.code : '';
    if (fastifyCode.startsWith('FST_ERR_CTP_') && /JSON/.test(String(e.message))) return invalidJson();
    const messages: Record<number, string> = {
      413: 'The request body is too large',
      415: 'Unsupported content type: send application/json',
    };
    return {
      exception: new AppException(status, type, code, messages[status] ?? 'Bad request'),
      unexpected: false,
    };
  }

  if (isRedisUnavailable(err)) {
    return {
      exception: AppException.unavailable(ErrorCode.RedisUnavailable, 'Redis is unavailable; retry later', 1),
      unexpected: false,
    };
  }
  if (isDatabaseUnavailable(err)) {
    return {
      exception: AppException.unavailable(ErrorCode.DatabaseUnavailable, 'The database is unavailable; retry later'),
      unexpected: false,
    };
  }
  return { exception: AppException.internal(), unexpected: true };
}

function invalidJson() {
  return {
    exception: AppException.badRequest(ErrorCode.InvalidJson, 'The request body is not valid JSON'),
    unexpected: false,
  };
}

/** What may be logged of an unexpected error: no SQL, no parameters, no stack. */
export function describeError(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { error: String(err) };
  const e = err as Error & { code?: unknown; driverError?: { code?: unknown; message?: unknown } };
  const description: Record<string, unknown> = { errorName: e.name };
  if (e.name === 'QueryFailedError' && e.driverError) {
    description.errorMessage = String(e.driverError.message);
    description.errorCode = e.driverError.code;
  } else {
    description.errorMessage = e.message;
    if (e.code !== undefined) description.errorCode = e.code;
  }
  return description;
}

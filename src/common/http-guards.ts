import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { CanActivate, ExecutionContext, Injectable, SetMetadata } from '@nestjs/common';
import { ROUTE_ARGS_METADATA } from '@nestjs/common/constants';
import { RouteParamtypes } from '@nestjs/common/enums/route-paramtypes.enum';
import type { FastifyRequest } from 'fastify';
import { AppException, ErrorCode, ErrorType } from './errors';
import { toAppException } from './error-mapping';
import { FORBIDDEN_KEYS, parseKeepingNumbers } from './exact-json';

/** A UTF-16 surrogate without its pair: what JSON's \u escapes can make and no text holds. */
const UNPAIRED_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Deepest JSON nesting a request body may have, unless told otherwise; ours need 3 levels. */
const MAX_JSON_DEPTH = 16;

/**
 * The JSON body parser: a JSON object, at most {@link MAX_JSON_DEPTH} levels deep (deep nesting
 * is a stack-exhaustion attack on everything that walks the value), parsed without prototype keys.
 * Numbers are kept exactly (see exact-json.ts): the scan that counts the depth also notes whether
 * any number needs more than a double, and only then is the body read a second time, losslessly.
 */
export function parseJsonObject(body: string, options: { refuseUnpairedSurrogates?: boolean; maxDepth?: number } = {}): Record<string, unknown> {
  const refuseUnpaired = options.refuseUnpairedSurrogates ?? true;
  const maxDepth = options.maxDepth ?? MAX_JSON_DEPTH;
  let depth = 0;
  let exact = false;
  for (let i = 0; i < body.length; i++) {
    const c = body.charCodeAt(i);
    if (c === 34 /* " */) {
      // A string: jump to its closing quote (one not escaped by an odd run of backslashes).
      let end = body.indexOf('"', i + 1);
      while (end !== -1 && escaped(body, end)) end = body.indexOf('"', end + 1);
      if (end === -1) break; // unterminated: JSON.parse refuses it
      i = end;
    } else if (c === 123 || c === 91) {
      if (++depth > maxDepth) throw AppException.badRequest(ErrorCode.InvalidJson, `The request body nests deeper than ${maxDepth} levels`);
    } else if (c === 125 || c === 93) depth--;
    else if (c === 45 || (c >= 48 && c <= 57)) {
      // A number (outside strings, only numbers hold '-' or digits): read to its end, in place.
      let digits = 0;
      for (;;) {
        const d = body.charCodeAt(i);
        if (d >= 48 && d <= 57) digits++;
        else if (d === 101 || d === 69) exact = true; // e, E
        if (i + 1 >= body.length || !isNumberChar(body.charCodeAt(i + 1))) break;
        i++;
      }
      if (digits > 15) exact = true;
    }
  }
  let value: unknown;
  let unpaired: string | undefined;
  try {
    // The reviver (a call per value) only when a prototype key or an escape may be in the text.
    const escapes = body.includes('\\u');
    const mayHoldForbidden = escapes || [...FORBIDDEN_KEYS].some((key) => body.includes(key));
    value = mayHoldForbidden
      ? JSON.parse(body, (key, v) => {
          // An escaped lone surrogate (\ud800) is valid JSON but no text: PostgreSQL would store it
          // as U+FFFD, a value other than the one sent. Refused, naming the field.
          if (refuseUnpaired && escapes && unpaired === undefined && ((typeof v === 'string' && UNPAIRED_SURROGATE.test(v)) || UNPAIRED_SURROGATE.test(key))) unpaired = key;
          return FORBIDDEN_KEYS.has(key) ? undefined : v;
        })
      : JSON.parse(body);
  } catch {
    throw AppException.badRequest(ErrorCode.InvalidJson, 'The request body is not valid JSON');
  }
  if (unpaired !== undefined) {
    throw AppException.badRequest(ErrorCode.InvalidJson, 'A string of the request body holds an unpaired UTF-16 surrogate (\\uD800–\\uDFFF): it is not text', unpaired || null);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw AppException.badRequest(ErrorCode.InvalidJson, 'The request body must be a JSON object');
  }
  // Valid JSON (JSON.parse said so): read it again, keeping the text of every non-plain number.
  if (exact) value = parseKeepingNumbers(body);
  return value as Record<string, unknown>;
}

/** True when the quote at `at` is escaped (preceded by an odd number of backslashes). */
function escaped(text: string, at: number): boolean {
  let backslashes = 0;
  for (let j = at - 1; j >= 0 && text.charCodeAt(j) === 92; j--) backslashes++;
  return backslashes % 2 === 1;
}

function isNumberChar(c: number): boolean {
  return (c >= 48 && c <= 57) || c === 45 || c === 43 || c === 46 || c === 101 || c === 69;
}

/** Router-level errors (a path parameter over the length limit, a malformed URL) in the one error shape. */
interface MinimalReply {
  status(code: number): { header(name: string, value: string): { send(body: unknown): unknown } };
}

export function frameworkErrorHandler(error: Error, request: { id: string }, reply: MinimalReply): void {
  const code = (error as { code?: string }).code;
  const exception =
    code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? AppException.badRequest(ErrorCode.ValidationFailed, 'A path parameter is too long')
      : code === 'FST_ERR_BAD_URL'
        ? AppException.badRequest(ErrorCode.ValidationFailed, 'The URL is malformed')
        : toAppException(error).exception;
  void reply.status(exception.status).header('x-request-id', request.id).send(exception.body());
}

/** Errors Node's HTTP parser raises before any route runs (headers or URL too large, bad bytes). */
export function clientErrorHandler(error: Error & { code?: string }, socket: Socket): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const tooLarge = error.code === 'HPE_HEADER_OVERFLOW';
  const status = tooLarge ? 431 : 400;
  const body = JSON.stringify(
    new AppException(status, ErrorType.InvalidRequest, ErrorCode.ValidationFailed, tooLarge ? 'The request line or headers are too large' : 'Malformed HTTP request').body(),
  );
  socket.end(
    // Its headers were not read: no X-Request-ID to echo, so a new one (every answer carries one).
    `HTTP/1.1 ${status} ${tooLarge ? 'Request Header Fields Too Large' : 'Bad Request'}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nX-Request-ID: ${randomUUID()}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** Marks a handler that ignores any request body (the forward-auth gate: a proxy may forward its client's). */
export const IGNORES_BODY = 'tally:ignores-body';
export const IgnoresBody = (): MethodDecorator => SetMetadata(IGNORES_BODY, true);

/**
 * SPEC §6 "unknown query or body fields: 400", also for routes that take no query or no body at
 * all: a DELETE sent `{"owner":"cluster"}` must not delete the org's budget (the default owner)
 * as if the body were read. A handler that reads the raw request takes whatever body it reads.
 */
@Injectable()
export class NoUnexpectedInputGuard implements CanActivate {
  private readonly takes = new WeakMap<object, { query: boolean; body: boolean }>();

  canActivate(context: ExecutionContext): boolean {
    if (context.getType() !== 'http') return true;
    const handler = context.getHandler();
    let takes = this.takes.get(handler);
    if (takes === undefined) {
      const args = (Reflect.getMetadata(ROUTE_ARGS_METADATA, context.getClass(), handler.name) ?? {}) as Record<string, unknown>;
      const kinds = new Set(Object.keys(args).map((key) => key.split(':')[0]));
      // A handler that reads the raw request reads its body itself (OTLP's protobuf or JSON); its query is still checked here.
      const raw = kinds.has(String(RouteParamtypes.REQUEST));
      takes = { query: kinds.has(String(RouteParamtypes.QUERY)), body: raw || kinds.has(String(RouteParamtypes.BODY)) || Reflect.getMetadata(IGNORES_BODY, handler) === true };
      this.takes.set(handler, takes);
    }
    if (takes.query && takes.body) return true;
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    const unknown = [
      ...(takes.query ? [] : Object.keys((request.query as Record<string, unknown> | undefined) ?? {})),
      ...(takes.body || request.body === null || typeof request.body !== 'object' ? [] : Object.keys(request.body)),
    ];
    if (unknown.length > 0) throw AppException.validation(unknown.map((param) => ({ param, message: 'is not a known field' })));
    return true;
  }
}

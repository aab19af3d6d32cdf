import { randomUUID } from 'node:crypto';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { fastify as createFastify, FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { parse as parseQuery } from 'qs';
import { AppModule } from './app.module';
import { ApiKeysService } from './auth/api-keys.service';
import { authenticateBeforeBody, limitBodies } from './auth/body-authentication';
import { AllExceptionsFilter } from './common/all-exceptions.filter';
import { MAX_REQUEST_HEAD_BYTES } from './common/api-responses';
import { GATE_ROUTES } from './budgets/budget-gate.controller';
import { boundIgnoredBodies, registerContentEncodings } from './common/content-encoding';
import { AppException, ErrorCode, ErrorType } from './common/errors';
import { clientErrorHandler, frameworkErrorHandler, parseJsonObject } from './common/http-guards';
import { stringifyExact } from './common/json-decimal';
import { NestPinoLogger } from './common/logger';
import { createValidationPipe } from './common/validation';
import { AppConfig } from './config/app-config';
import { MetricsService } from './metrics/metrics.service';
import { mountSwaggerUi } from './openapi';
import { OTLP_MAX_JSON_DEPTH, OTLP_TRACES_ROUTE, registerOtlpBodyParsing } from './usage/otlp/otlp-body';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Routes that take batches (records, OTLP exports): up to BODY_LIMIT_BYTES. Every other body is at most SMALL_BODY_LIMIT_BYTES. */
const BULK_ROUTES = ['/api/v1/llm/usage/records', OTLP_TRACES_ROUTE];
const SMALL_BODY_LIMIT_BYTES = 256 * 1024;

/** Query strings: repeated keys and `a[]=` both become arrays (a single comma list is split per field). */
export function parseQueryString(query: string): Record<string, unknown> {
  return parseQuery(query, { depth: 1, parameterLimit: 1000, arrayLimit: 1000, allowPrototypes: false, duplicates: 'combine' });
}

/**
 * Security headers on every response. The JSON API gets a CSP that forbids everything (nothing it
 * returns is meant to render); Swagger UI under /docs keeps its own needs (inline styles).
 */
export function securityHeaders(url: string): Record<string, string> {
  const headers: Record<string, string> = {
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
    'referrer-policy': 'no-referrer',
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-resource-policy': 'same-origin',
  };
  if (url.startsWith('/docs')) {
    headers['content-security-policy'] =
      "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; frame-ancestors 'none'";
  } else {
    headers['content-security-policy'] = "default-src 'none'; frame-ancestors 'none'";
    headers['cache-control'] = 'no-store';
  }
  return headers;
}

/**
 * Shutting down with keep-alive connections (a gateway's pool, nginx's `keepalive`): Fastify
 * closes only the connections idle when it starts to close, so one busy then stayed open and the
 * process waited for its forced exit (30 s, exit code 1). While closing, every response says
 * `Connection: close` (the socket ends with it), and a request that still arrives gets a 503
 * `not_ready` with Retry-After in the one error shape.
 */
function drainOnClose(fastify: FastifyInstance): void {
  let closing = false;
  fastify.addHook('preClose', async () => {
    closing = true;
  });
  fastify.addHook('onRequest', async () => {
    if (closing) throw AppException.unavailable(ErrorCode.NotReady, 'This instance is shutting down; retry (on another instance)', 1);
  });
  fastify.addHook('onSend', async (_request, reply, payload) => {
    if (closing) reply.header('connection', 'close');
    return payload;
  });
}

/** Builds the HTTP application (not listening yet): the same for `npm start`, tests and the OpenAPI CLI. */
export async function createHttpApp(
  config: AppConfig,
  logger: Logger,
  options: { preview?: boolean } = {},
): Promise<NestFastifyApplication> {
  // Our own Fastify instance (the project's fastify, 5.12+) rather than the one the adapter would
  // make with the older version it bundles: before 5.12 every request with a body bound its
  // parser callback with AsyncResource.bind, which made a JSON POST cost about three GETs and
  // pushed its garbage into the old generation (see BENCHMARKS.md, part 3).
  const instance = createFastify({
    bodyLimit: config.bodyLimitBytes,
    http: { maxHeaderSize: MAX_REQUEST_HEAD_BYTES },
    // The client's X-Request-ID is echoed when it is a sane token; otherwise one is generated.
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    routerOptions: { querystringParser: parseQueryString, ignoreTrailingSlash: true, maxParamLength: 256 },
    // Ours instead (see drainOnClose): the same 503, in the one error shape, with X-Request-ID and Retry-After.
    return503OnClosing: false,
    frameworkErrors: (error: Error, request: { id: string }, reply: unknown) => frameworkErrorHandler(error, request, reply as never),
    clientErrorHandler,
    forceCloseConnections: 'idle',
  });
  const adapter = new FastifyAdapter(instance as unknown as ConstructorParameters<typeof FastifyAdapter>[0]);
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.forRoot(config), adapter, {
    logger: new NestPinoLogger(logger),
    preview: options.preview,
    bodyParser: false, // ours below: JSON objects only, depth-limited
    abortOnError: false,
  });
  app.useGlobalPipes(createValidationPipe());
  app.useGlobalFilters(new AllExceptionsFilter());

  const fastify = app.getHttpAdapter().getInstance();
  // JSON objects only: any other body type is a 415, not a string handed to validation.
  fastify.removeContentTypeParser(['text/plain', 'application/json']);
  fastify.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    try {
      // An OTLP export carries text Tally does not read (prompts an instrumentation may have cut
      // inside a surrogate pair): refusing it would lose every span of the export (exporters do not
      // retry a 400). Such a character in a field it stores is kept as U+FFFD.
      // An empty body is no body (clients that send Content-Type on every request, a DELETE
      // included): a route that takes one refuses its absence in validation, naming the fields.
      if (body === '') return done(null, undefined);
      // Its envelope alone is 9 to 12 levels deep before an attribute value (a structured message
      // list nests further): OTLP bodies may nest up to OTLP_MAX_JSON_DEPTH.
      const otlp = request.routeOptions.url === OTLP_TRACES_ROUTE;
      done(null, parseJsonObject(body as string, otlp ? { refuseUnpairedSurrogates: false, maxDepth: OTLP_MAX_JSON_DEPTH } : {}));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  boundIgnoredBodies(instance);
  // First: no body is decompressed or parsed for a caller without a valid key.
  if (!options.preview) authenticateBeforeBody(instance, app.get(ApiKeysService, { strict: false }));
  registerContentEncodings(instance, { discardOn: GATE_ROUTES, bodyLimit: config.bodyLimitBytes });
  // After the gzip hook (decompressed bytes): only bulk ingest takes BODY_LIMIT_BYTES (and the gate
  // drops whatever body a proxy forwards, an LLM request's included).
  limitBodies(instance, { bulkRoutes: [...BULK_ROUTES, ...GATE_ROUTES], bulkLimit: config.bodyLimitBytes, smallLimit: Math.min(SMALL_BODY_LIMIT_BYTES, config.bodyLimitBytes) });
  registerOtlpBodyParsing(instance);
  // Any other content type: an empty body is no body (`curl -d ''` sends a form type); anything else a 415.
  fastify.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => {
    if ((body as Buffer).length === 0) return done(null, undefined);
    done(new AppException(415, ErrorType.InvalidRequest, ErrorCode.UnsupportedMediaType, 'Unsupported content type: send application/json'), undefined);
  });
  // Replies as JSON.stringify would, except that exact numbers (a budget's limit) keep every digit.
  fastify.setReplySerializer((payload) => stringifyExact(payload));
  fastify.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
    reply.headers(securityHeaders(request.url));
  });
  drainOnClose(instance);
  if (!options.preview) {
    const metrics = app.get(MetricsService);
    fastify.addHook('onResponse', async (request, reply) => {
      const route = request.routeOptions.url ?? 'unmatched';
      metrics.observeRequest(request.method, route, reply.statusCode, reply.elapsedTime / 1000);
      const line = {
        context: 'HTTP',
        reqId: request.id,
        method: request.method,
        route,
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime * 10) / 10,
      };
      if (reply.statusCode >= 500) logger.warn(line, 'request failed');
      else logger.info(line, 'request');
    });
  }
  mountSwaggerUi(app);
  return app;
}

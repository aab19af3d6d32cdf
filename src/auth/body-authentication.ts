import { Transform } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasRequestBody, refuseUnread, requestEncoding } from '../common/content-encoding';
import { AppException, ErrorCode, ErrorType } from '../common/errors';
import type { ApiKeysService } from './api-keys.service';
import { bearerToken } from './bearer-token';

/**
 * A request body is read only for a caller with a valid API key. Nest's guard runs after Fastify
 * has decompressed and parsed the body, so without this any client, with no key at all, could make
 * the process parse up to BODY_LIMIT_BYTES per request (a 10 KB gzip body of numbers took ~0.5 s
 * of the event loop, and every tenant's requests waited: found by a review). Every route that
 * takes a body needs a key (the public ones, /health and /metrics, are GETs: a GET or HEAD is left
 * alone, body or not), so the key is checked here, before the body is read; the guard checks it
 * again afterwards (it may have been revoked meanwhile) and decides roles and rate limits. A body
 * sent to no route is a 404 before it is read. See also {@link limitBodies}.
 */
export function authenticateBeforeBody(fastify: FastifyInstance, apiKeys: ApiKeysService): void {
  fastify.addHook('preParsing', async (request: FastifyRequest, reply, payload) => {
    if (!readsBody(request)) return payload;
    return refusingUnread(reply, async () => {
      // No route to read it for: a 404 at once (the not-found handler would parse it too).
      if (request.is404) throw new AppException(404, ErrorType.NotFound, ErrorCode.RouteNotFound, 'No such route');
      if (!(await apiKeys.authenticate(bearerToken(request.headers.authorization)))) {
        throw AppException.unauthorized(ErrorCode.InvalidApiKey, 'Invalid or revoked API key');
      }
      return payload;
    });
  });
}

/** A request whose body Fastify will read: one with a body, but a GET's or HEAD's (never parsed). */
function readsBody(request: FastifyRequest): boolean {
  return request.method !== 'GET' && request.method !== 'HEAD' && hasRequestBody(request);
}

/** Runs a check that may refuse a request before its body is read: a refusal closes the connection (refuseUnread). */
async function refusingUnread<T>(reply: FastifyReply, check: () => Promise<T>): Promise<T> {
  try {
    return await check();
  } catch (err) {
    return refuseUnread(reply, err as Error);
  }
}

/**
 * Bodies of routes that are not bulk ingest are at most `smallLimit` bytes once decompressed (a
 * budget, a reservation, a check: a few KB). `bulkLimit` (BODY_LIMIT_BYTES) is for batches of
 * records and OTLP exports; with it on every route, any valid key, even one the route refuses
 * (its 403 comes after the body is parsed), could make the process parse 4 MiB per request.
 * Registered after the gzip hook, so it counts decompressed bytes.
 */
export function limitBodies(fastify: FastifyInstance, options: { bulkRoutes: readonly string[]; bulkLimit: number; smallLimit: number }): void {
  const bulk = new Set(options.bulkRoutes);
  fastify.addHook('preParsing', async (request: FastifyRequest, reply, payload) => {
    if (!readsBody(request)) return payload;
    const isBulk = bulk.has(request.routeOptions.url ?? '');
    const limit = isBulk ? options.bulkLimit : options.smallLimit;
    // A plain body of a stated length (the usual request, the check's included): Fastify reads
    // exactly that many bytes, so the length decides without a stream in between. Refused here, not
    // by Fastify's own limit, whose 413 closes the connection while the client is still sending.
    const length = request.headers['content-length'];
    if (length !== undefined && requestEncoding(request) === 'identity') {
      if (Number(length) > limit) refuseUnread(reply, tooLarge(limit));
      return payload;
    }
    // Fastify counts the decompressed bytes of a bulk body against BODY_LIMIT_BYTES itself.
    if (isBulk) return payload;
    let read = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, callback) {
        read += chunk.length;
        if (read > limit) callback(tooLarge(limit));
        else callback(null, chunk);
      },
    });
    // Fastify compares what it read with Content-Length: the bytes sent, as the gzip hook counts
    // them (its stream's receivedEncodedLength), or, without one, the bytes read here.
    Object.defineProperty(counter, 'receivedEncodedLength', { get: () => (payload as { receivedEncodedLength?: number }).receivedEncodedLength ?? read });
    payload.on('error', (err) => counter.destroy(err));
    return payload.pipe(counter);
  });
}

function tooLarge(limit: number): Error {
  return Object.assign(new Error(`The body is over ${limit} bytes, the most this route takes`), { statusCode: 413 });
}

import type { IncomingMessage } from 'node:http';
import { Readable, Transform } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppException, ErrorCode, ErrorType } from './errors';

/** Whether a request carries a body Fastify will read (a length above 0, or a chunked one). */
export function hasRequestBody(request: FastifyRequest): boolean {
  const length = request.headers['content-length'];
  return length !== undefined ? length !== '0' : request.headers['transfer-encoding'] !== undefined;
}

/** The request's Content-Encoding, lower case: `identity` when none is given. */
export function requestEncoding(request: FastifyRequest): string {
  return String(request.headers['content-encoding'] ?? 'identity').trim().toLowerCase() || 'identity';
}

/**
 * Refused requests' bodies of declared lengths adding up to this on one connection are read and
 * dropped, so that a client still sending one (most do not wait for `100 Continue`) gets the
 * answer instead of a broken pipe; each for at most {@link DRAIN_MS}, then the connection closes.
 * Counted per connection, not per request: a client with no key must not make the process read
 * gigabytes by repeating 16 MiB requests on one kept-alive connection (a review read 3.6 GB in 10 s).
 */
const DRAINED_BYTES = 16 * 1024 * 1024;
const DRAIN_MS = 5_000;
const drainedOn = new WeakMap<object, number>();

/**
 * Refuses a request before its body is read. A body past what its connection may still drain
 * ({@link DRAINED_BYTES}), or sent chunked, closes the connection with the answer: kept alive,
 * Node would read and discard the rest of it however large.
 */
export function refuseUnread(reply: FastifyReply, error: Error): never {
  boundUnreadBody(reply);
  throw error;
}

/**
 * A body nobody will read is drained within the connection's budget (for DRAIN_MS from when the
 * answer is sent, when `afterAnswer`), or the answer closes the connection.
 */
function boundUnreadBody(reply: FastifyReply, afterAnswer = false): void {
  const request = reply.request.raw;
  const length = Number(request.headers['content-length']);
  const drained = (drainedOn.get(request.socket) ?? 0) + length;
  if (Number.isSafeInteger(length) && drained <= DRAINED_BYTES) {
    drainedOn.set(request.socket, drained);
    if (afterAnswer) reply.raw.once('finish', () => drainWithin(request, DRAIN_MS));
    else drainWithin(request, DRAIN_MS);
  } else reply.header('connection', 'close');
}

/**
 * A GET's or HEAD's body is never read (a probe may send one): bounded like a refused one, or a
 * client with no key could stream gigabytes into a kept-alive connection to /health/live (found
 * by a review: 1.8 GB in 10 s), or drip a byte every few seconds and hold it open.
 */
export function boundIgnoredBodies(fastify: FastifyInstance): void {
  fastify.addHook('onRequest', (request, reply, done) => {
    // Its handler may take its time (a report waits for a slot): the drain starts with the answer.
    if ((request.method === 'GET' || request.method === 'HEAD') && hasRequestBody(request)) boundUnreadBody(reply, true);
    done();
  });
}

/** Node reads and drops the rest of a body nobody read once the answer is sent: for `ms` at most. */
function drainWithin(request: IncomingMessage, ms: number): void {
  if (request.complete) return;
  const timer = setTimeout(() => request.socket.destroy(), ms);
  timer.unref();
  const done = (): void => {
    clearTimeout(timer);
    request.off('end', done);
    request.socket.off('close', done);
  };
  request.once('end', done);
  request.socket.once('close', done);
}

/**
 * Request bodies may come gzip-compressed (`Content-Encoding: gzip`: gateways batching usage
 * records and OTLP exporters with compression on both send it), on every route. The body limit
 * applies to the decompressed bytes, so a small bomb is refused like a large body. Any other
 * encoding is a 415: read as if it were not there, a compressed body would be reported as bad
 * JSON, or a body in an encoding the client thinks it applied would be taken as plain.
 */
export function registerContentEncodings(fastify: FastifyInstance, options: { discardOn: readonly string[]; bodyLimit: number }): void {
  const discarded = new Set(options.discardOn);
  fastify.addHook('preParsing', async (request, reply, payload) => {
    // No body to undo (a GET, or no length): Fastify reads none, and a gunzip of nothing would fail
    // with no one listening.
    if (!hasRequestBody(request)) return payload;
    // A forward-auth route decides on the client's headers: a body a proxy forwards with them
    // (Envoy's with_request_body, Traefik's forwardBody), of any type or encoding, is read and dropped.
    if (discarded.has(request.routeOptions.url ?? '')) return discarding(payload, options.bodyLimit);
    const encoding = requestEncoding(request);
    if (encoding === 'identity') return payload;
    if (encoding !== 'gzip') {
      refuseUnread(reply, new AppException(415, ErrorType.InvalidRequest, ErrorCode.UnsupportedMediaType, `Unsupported Content-Encoding '${encoding}': send gzip or none`));
    }
    // Fastify compares what it read with Content-Length: tell it the compressed length.
    const gunzip = Object.assign(createGunzip(), { receivedEncodedLength: 0 });
    const counter = new Transform({
      transform(chunk: Buffer, _enc, callback) {
        gunzip.receivedEncodedLength += chunk.length;
        callback(null, chunk);
      },
    });
    payload.on('error', (err) => gunzip.destroy(err));
    // Fastify listens while it reads the body, not after it answered (a 413 for the decompressed
    // size): an error of the rest of the stream must not be an unhandled one, which ends the process.
    gunzip.on('error', () => undefined);
    payload.pipe(counter).pipe(gunzip);
    return gunzip;
  });
}

/** The payload read to its end and dropped (a 413 past `limit` bytes): parsers see an empty body (no body). */
function discarding(payload: Readable, limit: number): Readable {
  let read = 0;
  const sink = new Transform({
    transform(chunk: Buffer, _enc, callback) {
      read += chunk.length;
      if (read > limit) callback(Object.assign(new Error(`The body is over ${limit} bytes`), { statusCode: 413 }));
      else callback();
    },
  });
  // Fastify compares what it read with Content-Length: the bytes sent.
  Object.defineProperty(sink, 'receivedEncodedLength', { get: () => read });
  payload.on('error', (err) => sink.destroy(err));
  return payload.pipe(sink);
}

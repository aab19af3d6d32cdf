import { Transform } from 'node:stream';
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
 * Refuses a request before its body is read, closing the connection: kept alive, Node would read
 * and discard the rest of the declared body, however large (a review fed 2.6 GB in 5 s to a 401,
 * at a core's worth of CPU).
 */
export function refuseUnread(reply: FastifyReply, error: Error): never {
  reply.header('connection', 'close');
  throw error;
}

/**
 * Request bodies may come gzip-compressed (`Content-Encoding: gzip`: gateways batching usage
 * records and OTLP exporters with compression on both send it), on every route. The body limit
 * applies to the decompressed bytes, so a small bomb is refused like a large body. Any other
 * encoding is a 415: read as if it were not there, a compressed body would be reported as bad
 * JSON, or a body in an encoding the client thinks it applied would be taken as plain.
 */
export function registerContentEncodings(fastify: FastifyInstance, options: { ignoreOn: readonly string[] }): void {
  const ignored = new Set(options.ignoreOn);
  fastify.addHook('preParsing', async (request, reply, payload) => {
    const encoding = requestEncoding(request);
    if (encoding === 'identity') return payload;
    // No body to undo (a GET, or no length): Fastify reads none, and a gunzip of nothing would fail
    // with no one listening. Nor on a forward-auth route: it gets the client's headers, not its body.
    if (!hasRequestBody(request) || ignored.has(request.routeOptions.url ?? '')) return payload;
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

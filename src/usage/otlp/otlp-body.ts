import { Transform } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import { AppException, ErrorCode, ErrorType } from '../../common/errors';

/** The OTLP/HTTP traces path (the signal path under Tally's ingest prefix). */
export const OTLP_TRACES_ROUTE = '/api/v1/llm/usage/otlp/v1/traces';
export const PROTOBUF = 'application/x-protobuf';

const unsupported = (message: string) => new AppException(415, ErrorType.InvalidRequest, ErrorCode.UnsupportedMediaType, message);

/**
 * Bodies of the OTLP route: protobuf as bytes (JSON goes through the JSON parser), optionally
 * gzip-compressed (`Content-Encoding: gzip`, as OTLP exporters send with compression on). The
 * body limit applies to the decompressed bytes. Other routes keep accepting JSON only, as before.
 */
export function registerOtlpBodyParsing(fastify: FastifyInstance): void {
  fastify.addContentTypeParser(PROTOBUF, { parseAs: 'buffer' }, (request, body, done) => {
    if (request.routeOptions.url !== OTLP_TRACES_ROUTE) done(unsupported('Unsupported content type: send application/json'), undefined);
    else done(null, body);
  });
  fastify.addHook('preParsing', async (request, _reply, payload) => {
    if (request.routeOptions.url !== OTLP_TRACES_ROUTE) return payload;
    const encoding = String(request.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
    if (encoding === 'identity' || encoding === '') return payload;
    if (encoding !== 'gzip') throw unsupported(`Unsupported Content-Encoding '${encoding}': send gzip or none`);
    // Fastify compares what it read with Content-Length: tell it the compressed length.
    const gunzip = Object.assign(createGunzip(), { receivedEncodedLength: 0 });
    const counter = new Transform({
      transform(chunk: Buffer, _enc, callback) {
        gunzip.receivedEncodedLength += chunk.length;
        callback(null, chunk);
      },
    });
    payload.on('error', (err) => gunzip.destroy(err));
    payload.pipe(counter).pipe(gunzip);
    return gunzip;
  });
}

import type { FastifyInstance } from 'fastify';
import { AppException, ErrorCode, ErrorType } from '../../common/errors';

/** The OTLP/HTTP traces path (the signal path under Tally's ingest prefix). */
export const OTLP_TRACES_ROUTE = '/api/v1/llm/usage/otlp/v1/traces';
export const PROTOBUF = 'application/x-protobuf';
/** Deepest nesting of an OTLP/JSON body: the envelope takes 9 to 12 levels, attribute values (kvlists of arrays) more. */
export const OTLP_MAX_JSON_DEPTH = 64;

const unsupported = (message: string) => new AppException(415, ErrorType.InvalidRequest, ErrorCode.UnsupportedMediaType, message);

/**
 * Bodies of the OTLP route: protobuf as bytes (JSON goes through the JSON parser; gzip, as OTLP
 * exporters send with compression on, is undone for every route: see content-encoding.ts).
 * Other routes keep accepting JSON only.
 */
export function registerOtlpBodyParsing(fastify: FastifyInstance): void {
  fastify.addContentTypeParser(PROTOBUF, { parseAs: 'buffer' }, (request, body, done) => {
    if (request.routeOptions.url === OTLP_TRACES_ROUTE) done(null, body);
    // Elsewhere an empty body is no body (a forward-auth route's, read and dropped: see content-encoding.ts).
    else if ((body as Buffer).length === 0) done(null, undefined);
    else done(unsupported('Unsupported content type: send application/json'), undefined);
  });
}

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { hasRequestBody } from '../common/content-encoding';
import { AppException, ErrorCode, ErrorType } from '../common/errors';
import type { CachedKey } from './api-key-cache';
import type { ApiKeysService } from './api-keys.service';
import { bearerToken } from './bearer-token';

const PREAUTHENTICATED = Symbol('preauthenticated');

type PreauthenticatedRequest = FastifyRequest & { [PREAUTHENTICATED]?: { secret: string; key: CachedKey } };

/**
 * A request body is read only for a caller with a valid API key. Nest's guard runs after Fastify
 * has decompressed and parsed the body, so without this any client, with no key at all, could make
 * the process parse up to BODY_LIMIT_BYTES per request (a 10 KB gzip body of numbers took ~0.5 s
 * of the event loop, and every tenant's requests waited: found by a review). Every route that
 * takes a body needs a key (the public ones, /health and /metrics, take none), so the key is
 * checked here, before the body is read; the guard still decides roles and rate limits, and reuses
 * this lookup (see {@link preauthenticatedKey}). A body sent to no route is a 404 before it is read.
 */
export function authenticateBeforeBody(fastify: FastifyInstance, apiKeys: ApiKeysService): void {
  fastify.addHook('preParsing', async (request: PreauthenticatedRequest, _reply, payload) => {
    if (!hasRequestBody(request)) return payload;
    // No route to read it for: a 404 at once (the not-found handler would parse it too).
    if (request.is404) throw new AppException(404, ErrorType.NotFound, ErrorCode.RouteNotFound, 'No such route');
    const secret = bearerToken(request.headers.authorization);
    const key = await apiKeys.authenticate(secret);
    if (!key) throw AppException.unauthorized(ErrorCode.InvalidApiKey, 'Invalid or revoked API key');
    request[PREAUTHENTICATED] = { secret, key };
    return payload;
  });
}

/** The key {@link authenticateBeforeBody} found for this request's secret, if it looked one up. */
export function preauthenticatedKey(request: FastifyRequest, secret: string): CachedKey | undefined {
  const found = (request as PreauthenticatedRequest)[PREAUTHENTICATED];
  return found?.secret === secret ? found.key : undefined;
}

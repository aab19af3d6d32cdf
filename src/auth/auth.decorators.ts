import { applyDecorators, createParamDecorator, ExecutionContext, SetMetadata } from '@nestjs/common';
import { ApiBearerAuth, ApiHeader, ApiSecurity, DECORATORS } from '@nestjs/swagger';
import type { FastifyRequest } from 'fastify';
import { ApiErrorResponse, RequestHeadTooLarge } from '../common/api-responses';
import { ON_BEHALF_OF_PATTERN } from './on-behalf-of';
import { Principal } from './principal';
import { ALL_ROLES, Role } from './role';

export const PUBLIC_KEY = 'tally:public';
export const ROLES_KEY = 'tally:roles';
/** Set on routes that carry a gateway's traffic: the per-key API rate limit does not apply to them. */
export const UNMETERED_KEY = 'tally:unmetered';
export const BEARER_SCHEME = 'bearer';
export const ON_BEHALF_OF_SCHEME = 'on-behalf-of';

/**
 * A route anyone may call, with no API key (health, metrics, docs). Routes are private unless
 * marked. Its OpenAPI operation says so with an empty security requirement (`security: []`).
 */
export const Public = () => applyDecorators(SetMetadata(PUBLIC_KEY, true), NoSecurityRequirement(), RequestHeadTooLarge());

/** Adds `security: []` to the operation (merged into its @ApiOperation metadata, whichever runs first). */
function NoSecurityRequirement(): MethodDecorator {
  return (_target, _key, descriptor) => {
    if (!descriptor) return; // on a class: only the guard's metadata applies
    const operation = Reflect.getMetadata(DECORATORS.API_OPERATION, descriptor.value as object) ?? {};
    Reflect.defineMetadata(DECORATORS.API_OPERATION, { ...operation, security: [] }, descriptor.value as object);
  };
}

function onBehalfOfHeader(effect: string) {
  return ApiHeader({
    name: 'X-On-Behalf-Of',
    required: false,
    description: `Optional external user id (1-150 printable ASCII characters, not \`*\`) for multi-user server-side integrations. ${effect}`,
    schema: { type: 'string', minLength: 1, maxLength: 150, pattern: ON_BEHALF_OF_PATTERN.source, example: 'user_123' },
  });
}

/**
 * A route that needs a bearer API key with one of `roles`; also documents the security
 * requirement and the 401/403 answers in OpenAPI.
 */
export function Authenticated(...roles: Role[]) {
  return applyDecorators(
    SetMetadata(ROLES_KEY, roles),
    // A bearer key alone, or a bearer key with X-On-Behalf-Of (both sent together).
    ApiBearerAuth(BEARER_SCHEME),
    ApiSecurity({ [BEARER_SCHEME]: [], [ON_BEHALF_OF_SCHEME]: [] }),
    onBehalfOfHeader('Reads made on behalf of a user see only that user\'s records.'),
    ApiErrorResponse(401, 'Missing, unknown or revoked API key'),
    ApiErrorResponse(403, `The key's role may not do this (allowed: ${roles.join(', ')})`),
    ApiErrorResponse(429, 'The key is over its rate limit; retry after `Retry-After` seconds'),
    RequestHeadTooLarge(),
  );
}

/**
 * A route that a reverse proxy calls for each of its clients' requests, with the client's own key
 * (the forward-auth gate): any valid key of any role is let through to the handler, and the
 * call is not counted against the key's API rate limit (it is the gateway's traffic, not use of
 * Tally's API). Documents the bearer requirement, X-On-Behalf-Of and the 401.
 */
/**
 * Set on a forward-auth route: a client's malformed X-On-Behalf-Of (its identity claim) is a 401,
 * which a proxy passes on to the client as a refusal (nginx `auth_request` takes only 2xx, 401
 * and 403 as answers: a 400 became its own 500; its 403 is the recipe's budget denial).
 */
export const GATEWAY_KEY = 'tally:gateway';

export function GatewayAuthenticated() {
  return applyDecorators(
    SetMetadata(ROLES_KEY, ALL_ROLES),
    SetMetadata(UNMETERED_KEY, true),
    SetMetadata(GATEWAY_KEY, true),
    ApiBearerAuth(BEARER_SCHEME),
    ApiSecurity({ [BEARER_SCHEME]: [], [ON_BEHALF_OF_SCHEME]: [] }),
    onBehalfOfHeader('The end user of the client request, forwarded by the proxy as the client sent it.'),
    ApiErrorResponse(
      401,
      'Missing, unknown or revoked API key, or a malformed `X-On-Behalf-Of` (`code: "invalid_on_behalf_of"`): the proxy refuses the client request',
    ),
    RequestHeadTooLarge(),
  );
}

export type AuthenticatedRequest = FastifyRequest & { principal?: Principal };

/** Hands the controller the typed principal the guard resolved. */
export const Auth = createParamDecorator((_data: unknown, ctx: ExecutionContext): Principal => {
  const request = ctx.switchToHttp().getRequest<AuthenticatedRequest>();
  if (!request.principal) throw new Error('@Auth() used on a route without @Authenticated()');
  return request.principal;
});

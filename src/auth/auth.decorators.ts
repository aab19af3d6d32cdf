import { applyDecorators, createParamDecorator, ExecutionContext, SetMetadata } from '@nestjs/common';
import { ApiBearerAuth, ApiHeader, ApiSecurity, DECORATORS } from '@nestjs/swagger';
import type { FastifyRequest } from 'fastify';
import { ApiErrorResponse } from '../common/api-responses';
import { ON_BEHALF_OF_PATTERN } from './on-behalf-of';
import { Principal } from './principal';
import { Role } from './role';

export const PUBLIC_KEY = 'tally:public';
export const ROLES_KEY = 'tally:roles';
export const BEARER_SCHEME = 'bearer';
export const ON_BEHALF_OF_SCHEME = 'on-behalf-of';

/**
 * A route anyone may call, with no API key (health, metrics, docs). Routes are private unless
 * marked. Its OpenAPI operation says so with an empty security requirement (`security: []`).
 */
export const Public = () => applyDecorators(SetMetadata(PUBLIC_KEY, true), NoSecurityRequirement());

/** Adds `security: []` to the operation (merged into its @ApiOperation metadata, whichever runs first). */
function NoSecurityRequirement(): MethodDecorator {
  return (_target, _key, descriptor) => {
    if (!descriptor) return; // on a class: only the guard's metadata applies
    const operation = Reflect.getMetadata(DECORATORS.API_OPERATION, descriptor.value as object) ?? {};
    Reflect.defineMetadata(DECORATORS.API_OPERATION, { ...operation, security: [] }, descriptor.value as object);
  };
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
    ApiHeader({
      name: 'X-On-Behalf-Of',
      required: false,
      description:
        'Optional external user id (1-150 printable ASCII characters, not `*`) for multi-user server-side integrations. ' +
        'Reads made on behalf of a user see only that user\'s records.',
      schema: { type: 'string', minLength: 1, maxLength: 150, pattern: ON_BEHALF_OF_PATTERN.source, example: 'user_123' },
    }),
    ApiErrorResponse(401, 'Missing, unknown or revoked API key'),
    ApiErrorResponse(403, `The key's role may not do this (allowed: ${roles.join(', ')})`),
    ApiErrorResponse(429, 'The key is over its rate limit; retry after `Retry-After` seconds'),
  );
}

export type AuthenticatedRequest = FastifyRequest & { principal?: Principal };

/** Hands the controller the typed principal the guard resolved. */
export const Auth = createParamDecorator((_data: unknown, ctx: ExecutionContext): Principal => {
  const request = ctx.switchToHttp().getRequest<AuthenticatedRequest>();
  if (!request.principal) throw new Error('@Auth() used on a route without @Authenticated()');
  return request.principal;
});

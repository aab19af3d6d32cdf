import { applyDecorators, createParamDecorator, ExecutionContext, SetMetadata } from '@nestjs/common';
import { ApiBearerAuth, ApiForbiddenResponse, ApiHeader, ApiSecurity, ApiTooManyRequestsResponse, ApiUnauthorizedResponse } from '@nestjs/swagger';
import type { FastifyRequest } from 'fastify';
import { ErrorResponseDto } from '../common/dto/error-response.dto';
import { Principal } from './principal';
import { Role } from './role';

export const PUBLIC_KEY = 'tally:public';
export const ROLES_KEY = 'tally:roles';
export const BEARER_SCHEME = 'bearer';
export const ON_BEHALF_OF_SCHEME = 'on-behalf-of';

/** A route anyone may call, with no API key (health, metrics, docs). Routes are private unless marked. */
export const Public = () => SetMetadata(PUBLIC_KEY, true);

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
      schema: { type: 'string', minLength: 1, maxLength: 150, example: 'user_123' },
    }),
    ApiUnauthorizedResponse({ description: 'Missing, unknown or revoked API key', type: ErrorResponseDto }),
    ApiForbiddenResponse({ description: `The key's role may not do this (allowed: ${roles.join(', ')})`, type: ErrorResponseDto }),
    ApiTooManyRequestsResponse({
      description: 'The key is over its rate limit; retry after `Retry-After` seconds',
      type: ErrorResponseDto,
      headers: { 'Retry-After': { description: 'Seconds to wait', schema: { type: 'integer' } } },
    }),
  );
}

export type AuthenticatedRequest = FastifyRequest & { principal?: Principal };

/** Hands the controller the typed principal the guard resolved. */
export const Auth = createParamDecorator((_data: unknown, ctx: ExecutionContext): Principal => {
  const request = ctx.switchToHttp().getRequest<AuthenticatedRequest>();
  if (!request.principal) throw new Error('@Auth() used on a route without @Authenticated()');
  return request.principal;
});

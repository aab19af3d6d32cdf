import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { AppException, ErrorCode } from '../common/errors';
import { ApiKeysService } from './api-keys.service';
import { AuthenticatedRequest, GATEWAY_KEY, PUBLIC_KEY, ROLES_KEY, UNMETERED_KEY } from './auth.decorators';
import { bearerToken } from './bearer-token';
import { headerValues, parseOnBehalfOf } from './on-behalf-of';
import { RateLimiter } from './rate-limiter';
import { Role } from './role';

/**
 * The one global guard. Deny by default: a route is reachable without a key only with
 * `@Public()`, and with a key only when `@Authenticated(...)` lists the key's role.
 */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly apiKeys: ApiKeysService,
    private readonly rateLimiter: RateLimiter,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (context.getType() !== 'http') return true;
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_KEY, targets)) return true;
    const roles = this.reflector.getAllAndOverride<Role[] | undefined>(ROLES_KEY, targets) ?? [];

    const request = context.switchToHttp().getRequest<AuthenticatedRequest>();
    const secret = bearerToken(request.headers.authorization);
    // Looked up again, not taken from the check before the body was read: a key revoked while a
    // slow body arrived must not get through (a cache hit: one hash and one map lookup).
    const key = await this.apiKeys.authenticate(secret);
    if (!key) throw AppException.unauthorized(ErrorCode.InvalidApiKey, 'Invalid or revoked API key');

    const header = request.headers['x-on-behalf-of'];
    // The route's metadata is read only when the header is there (most requests go without it).
    const onBehalfOf = header === undefined ? null : parseOnBehalfOf(oneValue(request), secret, this.reflector.getAllAndOverride<boolean>(GATEWAY_KEY, targets) ? 401 : 400);
    if (!roles.includes(key.role)) throw AppException.forbidden();
    if (!this.reflector.getAllAndOverride<boolean>(UNMETERED_KEY, targets)) await this.rateLimiter.consume(key.id, key.role);
    request.principal = { apiKeyId: key.id, orgId: key.orgId, role: key.role, teamId: key.teamId, onBehalfOf };
    return true;
  }
}

/** X-On-Behalf-Of as sent: one value, or all of them when it was repeated (refused). */
function oneValue(request: AuthenticatedRequest): string | string[] {
  const values = headerValues(request.raw.rawHeaders, 'x-on-behalf-of');
  return values.length === 1 ? values[0] : values;
}

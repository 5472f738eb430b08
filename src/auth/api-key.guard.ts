import {
  type CanActivate,
  type ExecutionContext,
  ForbiddenException,
  Injectable,
  UnauthorizedException,
} from '@nestjs/common';
import { HttpAdapterHost, Reflector } from '@nestjs/core';
import type { RequestWithActor } from './actor';
import { presentedKey } from './api-key';
import { ApiKeyStore } from './api-key.store';
import { PUBLIC_METADATA, SCOPES_METADATA } from './require-scopes.decorator';
import { type Scope, missingScopes } from './scopes';

/**
 * Every route's gate (registered globally). Open mode lets everything through with no actor.
 * With keys: @Public() routes pass; any other needs a key in force (401) holding the route's
 * scopes (403 naming the missing one), and the request gets `actor`. /docs is not a Nest route:
 * Swagger UI stays reachable, so "Authorize" can be used.
 */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(
    private readonly keys: ApiKeyStore,
    private readonly reflector: Reflector,
    private readonly adapterHost: HttpAdapterHost,
  ) {}

  canActivate(context: ExecutionContext): boolean {
    if (context.getType() !== 'http') return true;
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_METADATA, targets)) return true;
    const request = context.switchToHttp().getRequest<RequestWithActor & { headers: object }>();
    if (this.keys.mode === 'open') {
      request.actor = undefined;
      return true;
    }
    const key = presentedKey(request.headers as Record<string, unknown>);
    const actor = key === undefined ? undefined : this.keys.authenticate(key);
    if (!actor) {
      const response: unknown = context.switchToHttp().getResponse();
      this.adapterHost.httpAdapter.setHeader(response, 'WWW-Authenticate', 'Bearer');
      throw new UnauthorizedException(
        key === undefined
          ? 'an API key is required: send Authorization: Bearer <key> or X-API-Key: <key>'
          : 'the API key is not valid (unknown or revoked)',
      );
    }
    const needed = this.reflector.getAllAndOverride<Scope[]>(SCOPES_METADATA, targets) ?? ['admin'];
    const missing = missingScopes(actor.scopes, needed);
    if (missing.length > 0) {
      throw new ForbiddenException(
        `API key "${actor.keyName}" lacks the scope ${missing.join(', ')}`,
      );
    }
    request.actor = actor;
    return true;
  }
}

import {
  SetMetadata,
  applyDecorators,
  createParamDecorator,
  type ExecutionContext,
} from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiForbiddenResponse,
  ApiSecurity,
  ApiUnauthorizedResponse,
} from '@nestjs/swagger';
import type { Actor, RequestWithActor } from './actor';
import type { Scope } from './scopes';

export const SCOPES_METADATA = 'taskq:scopes';
export const PUBLIC_METADATA = 'taskq:public';
/** The OpenAPI security scheme names (see addAuthSchemes). */
export const BEARER_SCHEME = 'bearer';
export const API_KEY_SCHEME = 'api-key';

/**
 * The scopes a route needs when API keys are configured (one of them is enough when
 * `admin`). A route with neither this nor @Public() needs `admin`: a new route is closed until
 * somebody decides. Also documents the security requirement and the 401/403 answers.
 */
export function RequireScopes(...scopes: Scope[]): MethodDecorator & ClassDecorator {
  return applyDecorators(
    SetMetadata(SCOPES_METADATA, scopes),
    ApiBearerAuth(BEARER_SCHEME),
    ApiSecurity(API_KEY_SCHEME),
    ApiUnauthorizedResponse({ description: 'No API key, or one not in force.' }),
    ApiForbiddenResponse({
      description: `The key lacks the scope ${scopes.join(' and ')} (or admin)${
        scopes.includes('tasks:write') ? ', or may not submit the action' : ''
      }.`,
    }),
  );
}

/** A route anyone may call, keys or not (health). */
export const Public = (): MethodDecorator & ClassDecorator => SetMetadata(PUBLIC_METADATA, true);

/** The request's actor (undefined in open mode). */
export const CurrentActor = createParamDecorator(
  (_data: unknown, ctx: ExecutionContext): Actor | undefined =>
    ctx.switchToHttp().getRequest<RequestWithActor>().actor,
);

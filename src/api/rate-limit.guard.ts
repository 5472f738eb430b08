import { type ExecutionContext, HttpException, HttpStatus, Injectable } from '@nestjs/common';
import { PATH_METADATA } from '@nestjs/common/constants';
import { ThrottlerGuard } from '@nestjs/throttler';
import { clientIdentity } from './client-identity';

/** Controllers (by route prefix) that load balancers and orchestrators poll: never limited. */
const EXEMPT_PREFIXES = new Set(['health']);

/**
 * `@nestjs/throttler`'s guard with one budget per client across every route: the client is its
 * API key, else its address (see clientIdentity), not one budget per route and address as the
 * library's default key would give. Health endpoints are exempt. Not a global guard itself:
 * RateLimitInterceptor runs it once the guards are through.
 */
@Injectable()
export class RateLimitGuard extends ThrottlerGuard {
  protected override shouldSkip(context: ExecutionContext): Promise<boolean> {
    const prefix = Reflect.getMetadata(PATH_METADATA, context.getClass()) as unknown;
    const path = typeof prefix === 'string' ? prefix.replace(/^\/+/, '').split('/')[0] : '';
    return Promise.resolve(EXEMPT_PREFIXES.has(path));
  }

  protected override getTracker(request: Record<string, unknown>): Promise<string> {
    return Promise.resolve(clientIdentity(request));
  }

  /** The same JSON shape as taskq's other 429 answers. */
  protected override throwThrottlingException(): Promise<void> {
    throw new HttpException(
      {
        statusCode: HttpStatus.TOO_MANY_REQUESTS,
        error: 'Too Many Requests',
        message: 'too many requests from this client; see Retry-After',
      },
      HttpStatus.TOO_MANY_REQUESTS,
    );
  }

  protected override generateKey(
    _context: ExecutionContext,
    tracker: string,
    name: string,
  ): string {
    return `${name}:${tracker}`;
  }
}

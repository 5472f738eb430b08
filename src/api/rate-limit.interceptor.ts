import {
  type CallHandler,
  type ExecutionContext,
  Injectable,
  type NestInterceptor,
} from '@nestjs/common';
import { from, type Observable, switchMap } from 'rxjs';
import { RateLimitGuard } from './rate-limit.guard';

/**
 * Runs the rate limit after every guard, so authentication (a guard) has named the request's
 * actor by then, whichever order the global guards were registered in: a keyed request counts
 * against its key, not against its address.
 */
@Injectable()
export class RateLimitInterceptor implements NestInterceptor {
  constructor(private readonly limiter: RateLimitGuard) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    return from(this.limiter.canActivate(context)).pipe(switchMap(() => next.handle()));
  }
}

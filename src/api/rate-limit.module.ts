import { Module } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { ThrottlerModule } from '@nestjs/throttler';
import type { AppConfig } from '../config/app.config';
import { APP_CONFIG } from '../config/config.constants';
import { RateLimitGuard } from './rate-limit.guard';
import { RateLimitInterceptor } from './rate-limit.interceptor';

/**
 * RATE_LIMIT requests per RATE_LIMIT_WINDOW_MS per client, counted in this process; beyond,
 * 429 with Retry-After (seconds). RATE_LIMIT=0 turns it off. Applied by an interceptor, after
 * the guards (see RateLimitInterceptor).
 */
@Module({
  imports: [
    ThrottlerModule.forRootAsync({
      inject: [APP_CONFIG],
      useFactory: (config: AppConfig) => ({
        throttlers: [{ limit: config.rateLimit.limit, ttl: config.rateLimit.windowMs }],
        skipIf: () => config.rateLimit.limit === 0,
      }),
    }),
  ],
  providers: [RateLimitGuard, { provide: APP_INTERCEPTOR, useClass: RateLimitInterceptor }],
})
export class RateLimitModule {}

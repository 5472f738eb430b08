import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { ThrottlerModule } from '@nestjs/throttler';
import type { AppConfig } from '../config/app.config';
import { APP_CONFIG } from '../config/config.constants';
import { RateLimitGuard } from './rate-limit.guard';

/**
 * RATE_LIMIT requests per RATE_LIMIT_WINDOW_MS per client, counted in this process; beyond,
 * 429 with Retry-After (seconds). RATE_LIMIT=0 turns it off.
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
  providers: [{ provide: APP_GUARD, useClass: RateLimitGuard }],
})
export class RateLimitModule {}

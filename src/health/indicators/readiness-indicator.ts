import type { HealthIndicatorFunction } from '@nestjs/terminus';

/**
 * One part readiness depends on. Each check names its part (its result key), so a 503 says which
 * one failed. Adding a check is one class implementing this and one line in `READINESS_INDICATORS`
 * (health.module.ts).
 */
export interface ReadinessIndicator {
  checks(timeoutMs: number): HealthIndicatorFunction[];
}

/** The injection token of the readiness indicators, in the order their results are listed. */
export const READINESS_INDICATORS = Symbol('READINESS_INDICATORS');

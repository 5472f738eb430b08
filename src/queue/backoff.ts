export interface BackoffOptions {
  /** Delay before the second attempt; doubles for each attempt after. */
  baseMs: number;
  /** Upper bound of any one delay. */
  maxMs: number;
}

/**
 * Exponential backoff with "equal jitter": half the delay is fixed, half is random, so retries
 * of many messages that failed together spread out instead of stampeding the next attempt.
 *
 * @param failedAttempt the 1-based attempt that just failed
 * @param random a source in [0, 1), injectable for tests
 */
export function backoffDelay(
  failedAttempt: number,
  options: BackoffOptions,
  random: () => number = Math.random,
): number {
  const exponential = Math.min(options.maxMs, options.baseMs * 2 ** Math.max(0, failedAttempt - 1));
  const half = exponential / 2;
  return Math.round(half + random() * half);
}

/**
 * Thrown by a handler to fail for good: the consumer skips the remaining attempts and
 * dead-letters the message at once (bullmq's UnrecoverableError).
 */
export class NonRetryableError extends Error {
  override readonly name: string = 'NonRetryableError';
}

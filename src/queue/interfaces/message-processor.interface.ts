import type { Delivery } from './queue-message.interface';
import type { SharedWrite } from './shared-write.interface';

/** What the consumer will do with a failed delivery, decided before it is done. */
export type FailureDecision =
  { kind: 'retry'; delayMs: number; nextAttempt: number } | { kind: 'dead'; reason: string };

/**
 * The consumer's view of the code that handles messages. The queue module knows nothing else
 * about it (taskq's TaskProcessor implements it for tasks).
 */
export interface MessageProcessor<T = unknown> {
  /**
   * Handles one delivery. Resolving acks it; throwing fails the attempt (retry or dead-letter).
   * `signal` aborts on shutdown (after the drain timeout) and when the attempt is cancelled.
   * It may resolve with the write that records the outcome instead of making it itself: the
   * pool commits that write before the ack (on a table driver the write is the ack).
   */
  process(delivery: Delivery<T>, signal: AbortSignal): Promise<void | SharedWrite>;

  /**
   * Called after a failed attempt, before the message is nacked or dead-lettered, so the
   * outcome can be recorded first ("ack last"). It may resolve with the write that records the
   * failure instead, which the pool commits before the nack or dead-letter.
   * If it throws, the delivery is released to be tried again later.
   */
  onFailure?(
    delivery: Delivery<T>,
    error: unknown,
    decision: FailureDecision,
  ): Promise<void | SharedWrite>;

  /**
   * Optional: runs `work` (everything the pool does with one delivery: process, onFailure, the
   * settle and their log lines) inside a scope of the processor's, e.g. one that puts the
   * delivery's identity on every log line. Must call `work` once and return what it returns.
   */
  inScope?<R>(delivery: Delivery<T>, work: () => R): R;
}

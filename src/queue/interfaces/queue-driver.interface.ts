import type { DeadLetter, Delivery, PublishMessage, QueueStats } from './queue-message.interface';
import type { SharedWrite } from './shared-write.interface';

/** How a delivery ends: acked, nacked for a retry after `delayMs`, or dead-lettered. */
export type Settle =
  { kind: 'ack' } | { kind: 'nack'; delayMs: number } | { kind: 'dead'; reason: string };

/** Called by a driver for each delivery; the consumer settles it later through the driver. */
export type DeliveryCallback<T = unknown> = (delivery: Delivery<T>) => void;

export interface ConsumeOptions {
  /** The most unacknowledged deliveries this consumer may hold at once (buffered + running). */
  prefetch: number;
  /**
   * Optional hint: a consumer that still holds more than this many has work buffered, so the
   * driver may wait to refill until it holds at most this many and then fetch the freed slots
   * in one go, instead of one message per settle. Default prefetch - 1 (refill on every settle).
   */
  lowWater?: number;
}

/** What a driver reports when the broker may no longer hold what was published to it. */
export interface BrokerRecovery {
  /** The queues concerned. */
  queues: string[];
  /**
   * True: the broker lost these queues' messages (restarted without persistence, flushed).
   * False: the connection came back after an outage, so publishes made meanwhile may be missing.
   */
  lost: boolean;
  reason: string;
}

/** A running subscription to one queue. */
export interface ConsumerHandle {
  /** Stop new deliveries to this consumer; what it holds stays in flight. */
  pause(): void;
  resume(): void;
  /** Resolves once no further delivery can reach the callback. Idempotent. */
  cancel(): Promise<void>;
}

/** What a driver can do beyond the common contract; the conformance suite reads it. */
export interface DriverCapabilities {
  /** Messages survive the process (a restart finds them again). */
  durable: boolean;
  /** Deliveries carry a lease that expires unless extended; an expired lease redelivers. */
  leases: boolean;
  /**
   * How far `deduplicationKey` reaches. `exact` (the default when absent): a key is refused
   * while any message with it waits, is delayed or is in flight on the queue, whoever published
   * it. `best-effort`: only what this driver instance published and still tracks is known, so
   * a duplicate can get through (consumers must fence their effects anyway).
   */
  deduplication?: 'exact' | 'best-effort';
  /**
   * The messages are the application's own rows (a QueueTable): a stored row is deliverable by
   * itself, so there is nothing for a reconciler to republish or take over.
   */
  rowBacked?: boolean;
}

/**
 * The only seam between taskq and a message broker. Drivers are plain classes (no Nest imports)
 * and own their connections. Retries, backoff and the dead-letter decision belong to the
 * consumer, so every driver behaves the same; a driver only moves messages.
 *
 * Delivery is at least once: a message may be delivered again after a crash or a lost lease,
 * which is why consumers must make their effects idempotent (taskq's task rows are fenced).
 */
export interface QueueDriver {
  /** A name for logs and stats ("memory", "sqlite", ...). */
  readonly kind: string;
  readonly capabilities: DriverCapabilities;

  /**
   * Publishes messages to a queue, creating it if needed. Resolves with one id per message, in
   * order, only once the broker holds them as durably as it can (commit, publisher confirm).
   * A deduplicated message answers the id of the message already queued.
   */
  publish<T>(queue: string, messages: PublishMessage<T>[]): Promise<string[]>;

  /**
   * Starts delivering messages from a queue to `onDelivery`. The driver never lets this consumer
   * hold more than `prefetch` unsettled deliveries; settling one makes room for the next
   * (backpressure). Several consumers on one queue share its messages.
   */
  consume<T>(
    queue: string,
    onDelivery: DeliveryCallback<T>,
    options: ConsumeOptions,
  ): ConsumerHandle;

  /** Removes a delivered message for good. Rejects with StaleDeliveryError if the receipt is no longer current. */
  ack(delivery: Delivery): Promise<void>;

  /**
   * Optional: settles with the consumer's `write` (the delivery's outcome: a result with an ack,
   * a failure with a nack or a dead-letter), the write committed first, then the settle; where
   * the task row is the message, the committed outcome is the settle. Either way
   * `write.committed` is called once the write is durable. Without it, the worker pool commits
   * the write and then settles.
   */
  settleWith?(delivery: Delivery, write: SharedWrite, settle: Settle): Promise<void>;

  /**
   * A failed attempt: the message returns to the queue with `attempt + 1`, deliverable after
   * `delayMs` (0 = at once). Rejects with StaleDeliveryError if the receipt is no longer current.
   */
  nack(delivery: Delivery, options?: { delayMs?: number }): Promise<void>;

  /**
   * Hands a delivery back untouched (same attempt), e.g. on shutdown before it was started or
   * after it was aborted. Rejects with StaleDeliveryError if the receipt is no longer current.
   */
  release(delivery: Delivery): Promise<void>;

  /** Moves a delivered message to the queue's dead-letter store with a reason. */
  deadLetter(delivery: Delivery, reason: string): Promise<void>;

  /** Lease-based drivers: keeps the delivery ours for `ms` more. Others resolve at once. */
  extendLease(delivery: Delivery, ms: number): Promise<void>;

  /**
   * Optional, for lease-based drivers: extendLease for many deliveries in one round trip per
   * store (one transaction per file, one script call per queue), so a consumer renews all it
   * holds at once. Each lease is extended or found lost on its own; a lost one never fails the
   * others. Resolves with the deliveries whose lease was no longer ours (what extendLease would
   * reject with StaleDeliveryError), in any order; every other one is extended by `ms`. Rejects
   * only when the store cannot be reached, having extended some, all or none of them.
   */
  extendLeases?(deliveries: Delivery[], ms: number): Promise<Delivery[]>;

  /**
   * Optional, for drivers with exact deduplication: which of `keys` no live message on `queue`
   * (waiting, delayed or in flight) carries as its deduplication key. Recovery then publishes
   * only what is missing instead of offering every queued task to the deduplication.
   */
  missingKeys?(queue: string, keys: string[]): Promise<string[]>;

  /**
   * Optional: calls `listener` when the broker is found to have lost queued messages or to be
   * back after an outage (see BrokerRecovery), so the application can publish again what its
   * own records hold as queued. Returns a function that removes the listener.
   */
  onRecovery?(listener: (event: BrokerRecovery) => void): () => void;
  /** Counts for one queue. */
  stats(queue: string): Promise<QueueStats>;

  /** The newest dead letters of a queue, at most `limit`. */
  deadLetters(queue: string, limit?: number): Promise<DeadLetter[]>;

  /** Stops (or restarts) delivery of a queue to every consumer of this driver. */
  pauseQueue(queue: string): Promise<void>;
  resumeQueue(queue: string): Promise<void>;

  /** Resolves when the broker answers; rejects with DriverUnavailableError otherwise. */
  ping(): Promise<void>;

  /**
   * Cancels consumers and closes connections. Idempotent: a second call returns the same promise.
   * Unsettled deliveries are left to the broker's redelivery (durable drivers) or are lost
   * (memory; taskq's recovery sweep republishes them from the task table).
   */
  close(): Promise<void>;
}

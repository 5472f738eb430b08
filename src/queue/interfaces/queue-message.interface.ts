/** One message to publish. */
export interface PublishMessage<T = unknown> {
  body: T;
  /** Higher is delivered first; FIFO within one priority. Default 0. */
  priority?: number;
  /** Not deliverable before this many milliseconds have passed. */
  delayMs?: number;
  /**
   * While a message with this key is waiting or in flight on the queue, another publish with the
   * same key is dropped and answers the existing message's id.
   */
  deduplicationKey?: string;
  headers?: Record<string, string>;
  /**
   * The attempt this delivery will be (1-based). A message republished after a crash carries on
   * counting where its previous life stopped, so retries stay bounded. Default 1.
   */
  attempt?: number;
}

/** A message handed to a consumer. It stays unacknowledged until ack, nack, release or deadLetter. */
export interface Delivery<T = unknown> {
  /** Stable across redeliveries of the same message. */
  readonly id: string;
  readonly queue: string;
  readonly body: T;
  readonly headers: Readonly<Record<string, string>>;
  readonly priority: number;
  /** 1-based; grows by one on every nack (a failed attempt), not on release or redelivery. */
  readonly attempt: number;
  /** 1-based; grows on every delivery, including redeliveries after a lost lease or connection. */
  readonly deliveryCount: number;
  /** Opaque proof of this delivery (lease/fencing token, delivery tag, stream id). */
  readonly receipt: string;
}

/** Counts for one queue, as the driver sees it now. */
export interface QueueStats {
  queue: string;
  /** Deliverable now. */
  ready: number;
  /** Delivered and not yet acknowledged. */
  inFlight: number;
  /** Waiting for their delay (or retry backoff) to pass. */
  delayed: number;
  /** In the dead-letter store. */
  dead: number;
  paused: boolean;
}

/** A message in the dead-letter store. */
export interface DeadLetter<T = unknown> {
  id: string;
  queue: string;
  body: T;
  headers: Record<string, string>;
  attempt: number;
  reason: string;
  deadAt: Date;
}

import type { DeadLetter, Delivery, PublishMessage, QueueStats } from './queue-message.interface';

/** How a row-backed delivery ends when no outcome write ended it already. */
export type TableSettle =
  | { kind: 'ack' }
  | { kind: 'nack'; delayMs: number }
  | { kind: 'release' }
  | { kind: 'dead'; reason: string };

/** A claimed row as a delivery, and whether the application's outcome write settles it. */
export interface TableDelivery<T = unknown> extends Delivery<T> {
  /**
   * True for a row the application records outcomes on (a task): its fenced complete or fail
   * write is the settle, so nothing more is sent. False for a plain message row.
   */
  readonly settledByOutcome: boolean;
}

/**
 * The port through which a row-backed driver (postgres, sqlite) uses the application's table as its
 * queue. Defined here so the driver knows no table; implemented by the table's one owner
 * (src/persistence) and handed to the driver at boot (QueueDriverRegistry.bindQueueTable).
 * Every change is one statement, fenced by the delivery's receipt (its claim token).
 */
export interface QueueTable {
  /** The database the table lives in: a driver takes only its own (sqlite, postgres). */
  readonly dialect: 'sqlite' | 'postgres';
  /**
   * Makes `messages` deliverable. A message whose row already exists (a task's, keyed by its id)
   * costs nothing; others become rows. Answers one id per message, in order; a deduplicated
   * message answers the live message's id.
   */
  publish<T>(queue: string, messages: PublishMessage<T>[]): Promise<string[]>;
  /**
   * Claims up to `limit` deliverable rows of `queue` (due queued rows by priority then time,
   * and running rows whose lease expired or whose owner stopped beating, or that hold a claim
   * with no lease in the row, another driver's, untouched for `leaseMs`) for `owner`, leased
   * for `leaseMs`. Answers none while the queue is paused.
   */
  claim<T>(
    queue: string,
    limit: number,
    owner: string,
    leaseMs: number,
    staleBefore: number,
  ): Promise<TableDelivery<T>[]>;
  /** Settles one delivery; false when its receipt no longer holds the row (stale). */
  settle(delivery: Delivery, how: TableSettle): Promise<boolean>;
  /** Extends the leases still held under their receipts; answers the ids whose lease was lost. */
  extendLeases(deliveries: Delivery[], ms: number): Promise<string[]>;
  /** Records that `owner` is alive; `gone` marks it dead at once (a graceful close). */
  heartbeat(owner: string, gone?: boolean): Promise<void>;
  /** Deletes the heartbeats of owners long gone (run once per process start). */
  forgetOwners(): Promise<void>;
  missingKeys(queue: string, keys: string[]): Promise<string[]>;
  stats(queue: string): Promise<QueueStats>;
  deadLetters(queue: string, limit: number): Promise<DeadLetter[]>;
  setPaused(queue: string, paused: boolean): Promise<void>;
  /**
   * Wakes every process listening for `queue` (NOTIFY; SQLite's listeners see the commit itself),
   * or, with `dueAt` (epoch ms), tells them a row of it becomes due then (a retry's backoff).
   */
  notify(queue: string, dueAt?: number): Promise<void>;
  /**
   * Starts hearing of rows other processes make deliverable: `onWake(queue)`, or `onWake()` when
   * the table cannot say which queue (any may have rows), or `onWake(queue, dueAt)` for rows
   * that become due at `dueAt` (epoch ms); `onLost` when the listener fails.
   * PostgreSQL: LISTEN on a dedicated session. SQLite: the file's change counter, checked often.
   * Resolves with its closer.
   */
  listen(
    onWake: (queue?: string, dueAt?: number) => void,
    onLost: (error: Error) => void,
  ): Promise<() => Promise<void>>;
  ping(): Promise<void>;
}

/**
 * A transaction a driver lends the application (see QueueDriver.sharedWriter), opaque here: only
 * code that knows the lending driver's concrete scope (named by `kind`) can write through it.
 * Writes made through it share transactions with the driver's own operations, so a consumer's
 * outcome can commit in the same transaction as the ack that ends the delivery.
 */
export interface SharedTransactionScope {
  /** The driver kind that lends it ("sqlite"). */
  readonly kind: string;
}

/**
 * A write of the application's that a driver may commit in the same transaction as its own
 * operation: the outcome that goes with a settle (settleWith), the task rows that go with their
 * messages (publishWith). A driver that owns `writer` runs `run` inside its transaction (both
 * or neither); otherwise `commit` records it on its own, before the driver's operation.
 */
export interface SharedWrite {
  /** The scope `run` writes through; undefined when only `commit` can record it. */
  readonly writer?: SharedTransactionScope;
  /** Synchronously, inside a transaction of `writer`. Answers whether the write applied. */
  run(): boolean;
  /** On its own: resolves once committed, with whether the write applied. */
  commit(): Promise<boolean>;
  /** After the write committed, either way, with what `run` or `commit` answered. */
  committed(applied: boolean): void;
}

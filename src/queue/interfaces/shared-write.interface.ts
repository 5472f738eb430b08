import type { Database } from 'better-sqlite3';

/**
 * A SQLite connection a driver lends to the application, with the group commit its own writes
 * go through. Writes submitted to it share transactions with the driver's claims and settles,
 * so a consumer's outcome can commit in the same transaction as the ack that ends the delivery.
 */
export interface SharedSqliteWriter {
  /** The driver's connection: prepare statements on it, run them only inside `submit`. */
  readonly db: Database;
  /**
   * Runs `run` in the next group commit and resolves with its result once that commit is
   * durable. A throw rejects this write alone; `atomic` also undoes its own partial effects.
   */
  submit<T>(run: () => T, atomic?: boolean): Promise<T>;
}

/**
 * A write of the application's that a driver may commit in the same transaction as its own
 * operation: the outcome that goes with a settle (settleWith), the task rows that go with their
 * messages (publishWith). A driver that owns `writer` runs `run` inside its transaction (both
 * or neither); otherwise `commit` records it on its own, before the driver's operation.
 */
export interface SharedWrite {
  /** The connection `run` writes through; undefined when only `commit` can record it. */
  readonly writer?: SharedSqliteWriter;
  /** Synchronously, inside a transaction on `writer`. Answers whether the write applied. */
  run(): boolean;
  /** On its own: resolves once committed, with whether the write applied. */
  commit(): Promise<boolean>;
  /** After the write committed, either way, with what `run` or `commit` answered. */
  committed(applied: boolean): void;
}

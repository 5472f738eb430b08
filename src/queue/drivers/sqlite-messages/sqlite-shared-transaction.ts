import type { Database } from 'better-sqlite3';
import type { SharedTransactionScope } from '../../interfaces/shared-write.interface';

/**
 * What the sqlite driver lends for its own file: its connection, and the group commit its own
 * claims and settles go through. Writes submitted here share those transactions.
 */
export interface SqliteSharedTransaction extends SharedTransactionScope {
  readonly kind: 'sqlite';
  /** The driver's connection: prepare statements on it, run writes only inside `submit`. */
  readonly db: Database;
  /**
   * Runs `run` in the next group commit and resolves with its result once that commit is
   * durable. A throw rejects this write alone; `atomic` also undoes its own partial effects.
   */
  submit<T>(run: () => T, atomic?: boolean): Promise<T>;
}

/** Whether `scope` is the sqlite driver's (and so has a connection to write through). */
export function isSqliteSharedTransaction(
  scope: SharedTransactionScope | undefined,
): scope is SqliteSharedTransaction {
  return scope?.kind === 'sqlite' && 'db' in scope && 'submit' in scope;
}

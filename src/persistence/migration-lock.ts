import Database from 'better-sqlite3';
import type { DataSource, Migration } from 'typeorm';

/** How long a start-up waits for another process's migrations before it gives up. */
const LOCK_WAIT_MS = 120_000;

/**
 * Runs pending migrations while holding a lock that other taskq processes on the same database
 * also take, so concurrent start-ups (or `npm run migrate` beside a starting service) never run
 * a migration twice. TypeORM reads the applied migrations before it opens its transactions, so
 * without the lock two processes could both decide to apply the same one.
 *
 * - PostgreSQL: a session advisory lock (pg_advisory_lock), keyed by the current schema, on a
 *   connection of its own. The server drops it if the process dies.
 * - SQLite: an exclusive write transaction on a small sidecar file (`<database>.migrate-lock`).
 *   SQLite's file lock serialises processes on this machine (the only place that can open the
 *   file) and the OS releases it if the process dies. An in-memory database needs no lock.
 */
export async function runMigrationsLocked(dataSource: DataSource): Promise<Migration[]> {
  const run = () => dataSource.runMigrations({ transaction: 'each' });
  const { options } = dataSource;
  if (options.type === 'postgres') return withAdvisoryLock(dataSource, run);
  if (options.type === 'better-sqlite3' && options.database !== ':memory:') {
    return withFileLock(`${options.database}.migrate-lock`, run);
  }
  return run();
}

async function withAdvisoryLock<T>(dataSource: DataSource, work: () => Promise<T>): Promise<T> {
  const key = "hashtext('taskq:migrations:' || current_schema())";
  const runner = dataSource.createQueryRunner();
  await runner.connect();
  try {
    await runner.query(`SET lock_timeout = ${LOCK_WAIT_MS}`);
    await runner.query(`SELECT pg_advisory_lock(${key})`);
    try {
      return await work();
    } finally {
      await runner.query(`SELECT pg_advisory_unlock(${key})`);
    }
  } finally {
    await runner.query('RESET lock_timeout').catch(() => undefined);
    await runner.release();
  }
}

async function withFileLock<T>(path: string, work: () => Promise<T>): Promise<T> {
  const lock = new Database(path, { timeout: LOCK_WAIT_MS });
  try {
    // Waits (busy timeout) while another process holds it.
    lock.exec('BEGIN EXCLUSIVE');
    try {
      return await work();
    } finally {
      lock.exec('ROLLBACK');
    }
  } finally {
    lock.close();
  }
}

import type { Database, Statement } from 'better-sqlite3';
import { QueryFailedError, type DataSource, type EntityMetadata } from 'typeorm';
import { TaskStatus } from './task-status.enum';
import { TaskEntity } from './task.entity';
import { failsWholeSqliteBatch } from '../common/sqlite-errors';
import type { SharedSqliteWriter } from '../queue';

/** Writes per transaction at most, so one commit never holds the write lock for long. */
const MAX_BATCH = 1000;

interface PendingWrite {
  run: () => unknown;
  /** Under a savepoint, so a throw undoes this write's statements and nothing else. */
  atomic: boolean;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/**
 * The better-sqlite3 handle of a TypeORM DataSource, or undefined for any other driver.
 * TypeORM's BetterSqlite3Driver keeps its one connection in `databaseConnection`.
 */
export function betterSqliteHandle(dataSource: DataSource): Database | undefined {
  if (dataSource.options.type !== 'better-sqlite3') return undefined;
  const db = (dataSource.driver as unknown as { databaseConnection?: Database }).databaseConnection;
  return db && typeof db.prepare === 'function' ? db : undefined;
}

/**
 * The task table's hot statements on SQLite, prepared once and run straight on the connection
 * TypeORM opened (better-sqlite3 is synchronous: a statement runs to completion before anything
 * else does). Its SQL mirrors TaskStore's QueryBuilder path clause for clause, so both drivers
 * change the same rows under the same conditions.
 *
 * Writes are group-committed: every write submitted in one event-loop turn runs in one
 * BEGIN IMMEDIATE transaction, and each promise settles only after that transaction commits.
 * A caller therefore sees `true` only once its own row change is durable, exactly as with one
 * transaction per write; a commit that fails rejects every write in it, and nothing in it
 * counts as done.
 *
 * The connection is shared with TypeORM. A TypeORM transaction (`manager.transaction`,
 * migrations) keeps BEGIN open across awaits, and a statement run meanwhile would join it and
 * could be rolled back with it after its caller had been told it committed. So a batch never
 * starts while `db.inTransaction` is true; it waits for that transaction to end. Reads run at
 * once: they only see what a committed write or the open transaction made, as TypeORM's own
 * reads on this connection would.
 *
 * When the sqlite queue driver keeps its messages in this same file, the statements run on the
 * driver's connection instead (`writer`) and join its group commit: the claims, results and
 * acks of one event-loop turn then share one transaction, and a result can commit in the very
 * transaction that acks its message (see completion()). That connection is never used by
 * TypeORM, so the open-transaction rule above does not arise there.
 */
export class SqliteTaskStatements {
  private readonly columns: { db: string; prop: keyof TaskEntity; fallback: unknown }[];
  private readonly s: ReturnType<SqliteTaskStatements['prepare']>;
  private readonly inTransaction: {
    immediate(batch: PendingWrite[], outcomes: Outcome[]): void;
  };
  private readonly underSavepoint: (run: () => unknown) => unknown;
  private pending: PendingWrite[] = [];
  private scheduled = false;

  constructor(
    private readonly db: Database,
    metadata: EntityMetadata,
    /** The queue driver's connection to this file (db is then writer.db), if it lends one. */
    readonly writer?: SharedSqliteWriter,
  ) {
    this.columns = metadata.columns.map((column) => ({
      db: column.databaseName,
      prop: column.propertyName as keyof TaskEntity,
      // An absent property gets the column's default, as TypeORM's INSERT (DEFAULT) would.
      fallback: typeof column.default === 'function' ? null : (column.default ?? null),
    }));
    this.s = this.prepare(metadata.tableName);
    this.inTransaction = db.transaction((batch: PendingWrite[], outcomes: Outcome[]) => {
      for (const write of batch) outcomes.push(this.runOne(write));
    });
    // Nested inside `inTransaction`, better-sqlite3 runs this as a SAVEPOINT.
    this.underSavepoint = db.transaction((run: () => unknown) => run());
  }

  private prepare(table: string) {
    const db = this.db;
    const q = (name: string) => `"${name.replace(/"/g, '""')}"`;
    const names = this.columns.map((c) => q(c.db)).join(', ');
    const select = this.columns.map((c) => `${q(c.db)} AS ${q(c.prop)}`).join(', ');
    const T = q(table);
    // Same WHERE as TaskStore.updateClaimed.
    const claimed = `WHERE id = @id AND claim_token = @token AND status = '${TaskStatus.Running}'`;
    // Same CASE as callbackPending(): a terminal task with a callback URL queues its callback.
    const callback = `callback_status = CASE WHEN callback_url IS NULL THEN NULL ELSE 'pending' END,
      callback_next_at = CASE WHEN callback_url IS NULL THEN NULL ELSE @now END`;
    const claimSet = `UPDATE ${T} SET status = '${TaskStatus.Running}', attempt = @attempt,
      claim_token = @token, started_at = @now, updated_at = @now
      WHERE id = @id AND ((status = '${TaskStatus.Queued}' AND attempt < @attempt)`;
    return {
      insert: db.prepare(
        `INSERT INTO ${T} (${names}) VALUES (${this.columns.map(() => '?').join(', ')})`,
      ),
      findById: db.prepare(`SELECT ${select} FROM ${T} WHERE id = ? LIMIT 1`),
      claim: db.prepare(`${claimSet})`),
      claimRedelivered: db.prepare(
        `${claimSet} OR (status = '${TaskStatus.Running}' AND attempt = @attempt))`,
      ),
      complete: db.prepare(
        `UPDATE ${T} SET status = '${TaskStatus.Completed}', result = @result, error = NULL,
           processed_at = @now, updated_at = @now, claim_token = NULL, ${callback} ${claimed}`,
      ),
      failFinal: db.prepare(
        `UPDATE ${T} SET status = '${TaskStatus.Failed}', error = @error, processed_at = @now,
           updated_at = @now, claim_token = NULL, ${callback} ${claimed}`,
      ),
      failRetry: db.prepare(
        `UPDATE ${T} SET status = '${TaskStatus.Queued}', error = @error, processed_at = NULL,
           updated_at = @now, claim_token = NULL ${claimed}`,
      ),
      progress: db.prepare(
        `UPDATE ${T} SET progress = @percent, progress_message = @message, updated_at = @now
         ${claimed}`,
      ),
    };
  }

  /** All rows in one transaction: all or none. */
  insert(tasks: TaskEntity[]): Promise<void> {
    return this.submit(this.insertNow(tasks), tasks.length > 1);
  }

  /**
   * The INSERTs as a synchronous step, for a caller's own transaction on `db` (under a
   * savepoint if it must be all or none). Errors come out as TypeORM's QueryFailedError.
   */
  insertNow(tasks: TaskEntity[]): () => void {
    const rows = tasks.map((task) =>
      this.columns.map(({ prop, fallback }) => (task[prop] === undefined ? fallback : task[prop])),
    );
    const stmt = this.s.insert;
    return () => {
      try {
        for (const row of rows) stmt.run(row);
      } catch (error) {
        throw asQueryFailed(error, stmt.source) as Error;
      }
    };
  }

  findById(id: string): TaskEntity | null {
    const row = this.wrap(this.s.findById, () => this.s.findById.get(id));
    return row ? Object.assign(new TaskEntity(), row) : null;
  }

  claim(id: string, attempt: number, token: string, redelivered: boolean): Promise<boolean> {
    const stmt = redelivered ? this.s.claimRedelivered : this.s.claim;
    const params = { id, attempt, token, now: Date.now() };
    return this.submit(() => stmt.run(params).changes === 1);
  }

  complete(id: string, token: string, result: string, now: number): Promise<boolean> {
    return this.submit(this.completeNow(id, token, result, now));
  }

  /** The completing UPDATE as a synchronous step, for a caller's own transaction on `db`. */
  completeNow(id: string, token: string, result: string, now: number): () => boolean {
    const params = { id, token, result, now: Math.trunc(now) };
    return () => this.s.complete.run(params).changes === 1;
  }

  fail(id: string, token: string, error: string, final: boolean, now: number): Promise<boolean> {
    return this.submit(this.failNow(id, token, error, final, now));
  }

  /** The failing UPDATE as a synchronous step, for a caller's own transaction on `db`. */
  failNow(id: string, token: string, error: string, final: boolean, now: number): () => boolean {
    const stmt = final ? this.s.failFinal : this.s.failRetry;
    const params = { id, token, error, now: Math.trunc(now) };
    return () => stmt.run(params).changes === 1;
  }

  progress(id: string, token: string, percent: number, message: string | null): Promise<boolean> {
    const params = { id, token, percent, message, now: Date.now() };
    return this.submit(() => this.s.progress.run(params).changes === 1);
  }

  /** Queues `run` for the next group commit; settles after that commit. */
  private submit<T>(run: () => T, atomic = false): Promise<T> {
    if (this.writer) {
      return this.writer.submit(run, atomic).catch((error: unknown) => {
        throw asQueryFailed(error, this.s.insert.source) as Error;
      });
    }
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ run, atomic, resolve: resolve as (value: unknown) => void, reject });
      this.schedule(0);
    });
  }

  private schedule(delayMs: number): void {
    if (this.scheduled) return;
    this.scheduled = true;
    const flush = (): void => {
      this.scheduled = false;
      this.flush();
    };
    if (delayMs > 0) setTimeout(flush, delayMs);
    else setImmediate(flush);
  }

  private flush(): void {
    if (this.pending.length === 0) return;
    if (this.db.open && this.db.inTransaction) {
      // A TypeORM transaction is open across awaits: do not join it (see the class comment).
      this.schedule(1);
      return;
    }
    const batch = this.pending.splice(0, MAX_BATCH);
    const outcomes: Outcome[] = [];
    try {
      this.inTransaction.immediate(batch, outcomes);
    } catch (error) {
      // The transaction rolled back (or never began): none of its writes happened.
      const failure = asQueryFailed(error, 'BEGIN IMMEDIATE … COMMIT');
      for (const write of batch) write.reject(failure);
      if (this.pending.length > 0) this.schedule(0);
      return;
    }
    for (let i = 0; i < batch.length; i++) {
      const outcome = outcomes[i];
      if (outcome.ok) batch[i].resolve(outcome.value);
      else batch[i].reject(outcome.error);
    }
    if (this.pending.length > 0) this.schedule(0);
  }

  private runOne(write: PendingWrite): Outcome {
    try {
      return { ok: true, value: write.atomic ? this.underSavepoint(write.run) : write.run() };
    } catch (error) {
      if (failsWholeSqliteBatch(error)) throw error;
      return { ok: false, error: asQueryFailed(error, this.s.insert.source) };
    }
  }

  private wrap<T>(stmt: Statement, run: () => T): T {
    try {
      return run();
    } catch (error) {
      throw asQueryFailed(error, stmt.source);
    }
  }
}

/**
 * Errors from SQLite look as TypeORM's would (QueryFailedError with the driver's error inside),
 * so callers such as the unique-key check in TasksService work on either path.
 */
function asQueryFailed(error: unknown, sql: string): unknown {
  if (error instanceof QueryFailedError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !code.startsWith('SQLITE_')) return error;
  return new QueryFailedError(sql, undefined, error as Error);
}

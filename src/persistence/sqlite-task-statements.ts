import type { Database, Statement } from 'better-sqlite3';
import { QueryFailedError, type DataSource, type EntityMetadata } from 'typeorm';
import { GroupCommit, type Outcome, type RetryLater } from '../common/group-commit';
import { failsWholeSqliteBatch } from '../common/sqlite-errors';
import { DEFAULT_TENANT, type TaskActor } from '../auth/actor';
import {
  type CallbackChange,
  type ListTasksFilter,
  type TaskKey,
  TaskStatements,
} from './task-statements';
import { TERMINAL_STATUSES, TaskStatus } from './task-status.enum';
import { SQLITE_COUNTS } from './sqlite-queue-counts';
import { SqliteQueueTable } from './sqlite-queue-table';
import { TaskEntity } from './task.entity';

/** Writes per transaction at most, so one commit never holds the write lock for long. */
const MAX_BATCH = 1000;

interface Write {
  run: () => unknown;
  /** Under a savepoint, so a throw undoes this write's statements and nothing else. */
  atomic: boolean;
}

/**
 * The better-sqlite3 handle of a TypeORM DataSource, or undefined for any other driver.
 * TypeORM's BetterSqlite3Driver keeps its one connection in `databaseConnection`.
 */
export function betterSqliteHandle(dataSource: DataSource): Database | undefined {
  if (dataSource.options.type !== 'better-sqlite3') return undefined;
  const db = (dataSource.driver as unknown as { databaseConnection?: Database }).databaseConnection;
  return db && typeof db.prepare === 'function' ? db : undefined;
}

const q = (name: string): string => `"${name.replace(/"/g, '""')}"`;
/** Enum values, never input: safe to inline. */
const literals = (values: readonly string[]): string => values.map((v) => `'${v}'`).join(', ');

/** `(at, id)` strictly after (`>`) or before (`<`) the position in @{atParam}, @{idParam}. */
function keyset(at: string, op: '<' | '>', atParam: string, idParam: string): string {
  return `(${at} ${op} @${atParam} OR (${at} = @${atParam} AND id ${op} @${idParam}))`;
}

/**
 * The task table on SQLite: statements prepared once (on first use, so a process may start
 * before the table exists) and run straight on the connection (better-sqlite3 is synchronous:
 * a statement runs to completion before anything else does).
 *
 * Every write is group-committed: the writes submitted in one event-loop turn run in one
 * BEGIN IMMEDIATE transaction, and each promise settles only after that transaction commits.
 * A caller therefore sees `true` only once its own row change is durable, exactly as with one
 * transaction per write; a commit that fails rejects every write in it, and nothing in it
 * counts as done.
 *
 * Alone, the connection is TypeORM's. A TypeORM transaction (`manager.transaction`, migrations)
 * keeps BEGIN open across awaits, and a statement run meanwhile would join it and could be
 * rolled back with it after its caller had been told it committed. So a batch never starts
 * while `db.inTransaction` is true; it waits for that transaction to end. Reads run at once:
 * they only see what a committed write or the open transaction made.
 */
export class SqliteTaskStatements extends TaskStatements {
  private readonly columns: { db: string; prop: keyof TaskEntity; fallback: unknown }[];
  private readonly table: string;
  private prepared?: ReturnType<SqliteTaskStatements['prepare']>;
  private readonly lists = new Map<string, Statement>();
  private readonly commits: GroupCommit<Write, unknown>;
  private readonly inTransaction: { immediate(batch: Write[]): Outcome<unknown>[] };
  private readonly underSavepoint: (run: () => unknown) => unknown;

  constructor(
    private readonly db: Database,
    metadata: EntityMetadata,
  ) {
    super();
    this.columns = metadata.columns.map((column) => ({
      db: column.databaseName,
      prop: column.propertyName as keyof TaskEntity,
      // An absent property gets the column's default, as TypeORM's INSERT (DEFAULT) would.
      fallback: typeof column.default === 'function' ? null : (column.default ?? null),
    }));
    this.table = q(metadata.tableName);
    this.inTransaction = db.transaction((batch: Write[]) => batch.map((w) => this.runOne(w)));
    // Nested inside `inTransaction`, better-sqlite3 runs this as a SAVEPOINT.
    this.underSavepoint = db.transaction((run: () => unknown) => run());
    this.commits = new GroupCommit((batch) => this.commitBatch(batch), { maxBatch: MAX_BATCH });
  }

  private get s(): ReturnType<SqliteTaskStatements['prepare']> {
    this.prepared ??= this.prepare();
    return this.prepared;
  }

  /** Every column as its entity property, so a row becomes a TaskEntity by assignment. */
  private get select(): string {
    return this.columns.map((c) => `${q(c.db)} AS ${q(c.prop)}`).join(', ');
  }

  private prepare() {
    const db = this.db;
    const T = this.table;
    const names = this.columns.map((c) => q(c.db)).join(', ');
    const rows = `SELECT ${this.select} FROM ${T}`;
    const { Queued, Running, Cancelled, Failed, Completed } = TaskStatus;
    // The fence of every outcome: the row is running under the caller's claim token.
    const held = (token: string) =>
      `id = @id AND claim_token = @${token} AND status = '${Running}'`;
    // A terminal change of a task with a callback URL queues its callback.
    const callbackPending = `callback_status = CASE WHEN callback_url IS NULL THEN NULL ELSE 'pending' END,
      callback_next_at = CASE WHEN callback_url IS NULL THEN NULL ELSE @now END`;
    // A queued row of an earlier attempt; the redelivered variant adds a running row of this one.
    const claimSet = `UPDATE ${T} SET status = '${Running}', attempt = @attempt,
      deliveries = deliveries + 1, claim_token = @token, started_at = @now, updated_at = @now
      WHERE id = @id AND ((status = '${Queued}' AND attempt < @attempt)`;
    const claimReturning = 'RETURNING actor_key AS keyName, tenant';
    const callbackHeld = `id = @id AND callback_status = 'pending'
      AND callback_attempts = @heldAttempts AND callback_next_at = @heldNextAt`;
    const ids = `(SELECT value FROM json_each(@ids))`;
    const queuedKeys = (after: boolean) =>
      db.prepare(
        `SELECT id, queue, created_at AS createdAt FROM ${T} WHERE status = '${Queued}'
         ${after ? `AND ${keyset('created_at', '>', 'createdAt', 'id')}` : ''}
         ORDER BY created_at, id LIMIT @limit`,
      );
    const staleQueued = (after: boolean) =>
      db.prepare(
        `${rows} WHERE status = '${Queued}' AND queue = @queue AND updated_at < @before
           AND (run_at IS NULL OR run_at < @before)
           ${after ? `AND ${keyset('updated_at', '>', 'afterAt', 'afterId')}` : ''}
         ORDER BY updated_at, id LIMIT @limit`,
      );
    return {
      insert: db.prepare(
        `INSERT INTO ${T} (${names}) VALUES (${this.columns.map(() => '?').join(', ')})`,
      ),
      insertNew: db.prepare(
        `INSERT INTO ${T} (${names}) VALUES (${this.columns.map(() => '?').join(', ')})
         ON CONFLICT (tenant, idempotency_key) DO NOTHING`,
      ),
      // `@tenant IS NULL`: an internal caller that names no tenant.
      findById: db.prepare(
        `${rows} WHERE id = @id AND (@tenant IS NULL OR tenant = @tenant) LIMIT 1`,
      ),
      findByKey: db.prepare(`${rows} WHERE tenant = @tenant AND idempotency_key = @key LIMIT 1`),
      claim: db.prepare(`${claimSet}) ${claimReturning}`),
      claimRedelivered: db.prepare(
        `${claimSet} OR (status = '${Running}' AND attempt = @attempt)) ${claimReturning}`,
      ),
      actorOf: db.prepare(`SELECT actor_key AS keyName, tenant FROM ${T} WHERE id = ? LIMIT 1`),
      complete: db.prepare(
        `UPDATE ${T} SET status = '${Completed}', result = @result, error = NULL,
           processed_at = @now, updated_at = @now, claim_token = NULL, ${callbackPending}
         WHERE ${held('token')}`,
      ),
      failFinal: db.prepare(
        `UPDATE ${T} SET status = '${Failed}', error = @error, processed_at = @now,
           updated_at = @now, claim_token = NULL, ${callbackPending} WHERE ${held('token')}`,
      ),
      // Due again at @retryAt: where the row is the message (the sqlite driver) this is the nack.
      failRetry: db.prepare(
        `UPDATE ${T} SET status = '${Queued}', error = @error, processed_at = NULL,
           updated_at = @now, claim_token = NULL, run_at = coalesce(@retryAt, run_at)
         WHERE ${held('token')}`,
      ),
      progress: db.prepare(
        `UPDATE ${T} SET progress = @percent, progress_message = @message, updated_at = @now
         WHERE ${held('token')}`,
      ),
      reclaim: db.prepare(
        `UPDATE ${T} SET attempt = @attempt, deliveries = deliveries + 1, claim_token = @token,
           started_at = @now, updated_at = @now WHERE ${held('staleToken')} AND attempt < @attempt`,
      ),
      cancel: db.prepare(
        `UPDATE ${T} SET status = '${Cancelled}', processed_at = @now, updated_at = @now,
           ${callbackPending} WHERE id = @id AND (@tenant IS NULL OR tenant = @tenant)
           AND status IN ('${Queued}', '${Running}')`,
      ),
      requeueFinished: db.prepare(
        `UPDATE ${T} SET status = '${Queued}', attempt = 0, deliveries = 0, result = NULL, error = NULL,
           progress = NULL, progress_message = NULL, claim_token = NULL, started_at = NULL,
           processed_at = NULL, run_at = NULL, updated_at = @now, callback_status = NULL,
           callback_attempts = 0, callback_error = NULL, callback_next_at = NULL
         WHERE id = @id AND (@tenant IS NULL OR tenant = @tenant)
           AND status IN ('${Failed}', '${Cancelled}')`,
      ),
      cancelledAmong: db
        .prepare(`SELECT id FROM ${T} WHERE id IN ${ids} AND status = '${Cancelled}'`)
        .pluck(),
      countQueued: db
        .prepare(
          `SELECT count(*) FROM ${T} INDEXED BY idx_tasks_queued_created WHERE status = '${Queued}'`,
        )
        .pluck(),
      requeueRunning: db.prepare(
        `UPDATE ${T} SET status = '${Queued}', claim_token = NULL, updated_at = @now
         WHERE status = '${Running}' AND queue IN (SELECT value FROM json_each(@queues))`,
      ),
      queuedKeys: queuedKeys(false),
      queuedKeysAfter: queuedKeys(true),
      queuedByIds: db.prepare(`${rows} WHERE id IN ${ids} AND status = '${Queued}'`),
      staleQueued: staleQueued(false),
      staleQueuedAfter: staleQueued(true),
      staleRunning: db.prepare(
        `${rows} WHERE status = '${Running}' AND queue = @queue AND updated_at < @before
         ORDER BY updated_at LIMIT @limit`,
      ),
      countQueuedDue: db
        .prepare(`SELECT ${SQLITE_COUNTS.queued} - ${SQLITE_COUNTS.delayed}`)
        .pluck(),
      oldestQueuedAt: db
        .prepare(
          `SELECT coalesce(run_at, created_at) FROM ${T} INDEXED BY idx_tasks_queued_created
           WHERE status = '${Queued}' AND queue = @queue AND (run_at IS NULL OR run_at <= @now)
           ORDER BY created_at LIMIT 1`,
        )
        .pluck(),
      exists: db.prepare(`SELECT 1 FROM ${T} WHERE id = ? LIMIT 1`).pluck(),
      dueCallbacks: db.prepare(
        `${rows} WHERE callback_status = 'pending' AND callback_next_at <= @now
         ORDER BY callback_next_at LIMIT @limit`,
      ),
      claimCallback: db.prepare(
        `UPDATE ${T} SET callback_attempts = @attempts, callback_next_at = @nextAt
         WHERE ${callbackHeld}`,
      ),
      settleCallback: db.prepare(
        `UPDATE ${T} SET callback_status = @status, callback_error = @error,
           callback_next_at = @nextAt WHERE ${callbackHeld}`,
      ),
      deleteExpired: db.prepare(
        `DELETE FROM ${T} WHERE id IN (SELECT id FROM ${T}
           WHERE status IN (${literals(TERMINAL_STATUSES)}) AND processed_at < @cutoff
             AND (callback_status IS NULL OR callback_status <> 'pending')
           LIMIT @limit)`,
      ),
    };
  }

  private queue?: SqliteQueueTable;

  /** The task table as the sqlite driver's queue, on this connection and group commit. */
  override queueTable(): SqliteQueueTable {
    this.queue ??= new SqliteQueueTable(this.db, (run) => this.submit(run));
    return this.queue;
  }

  /** Under a savepoint when there are several rows: all or none. */
  insert(tasks: TaskEntity[]): Promise<void> {
    if (tasks.length === 0) return Promise.resolve();
    const rows = this.values(tasks);
    return this.submit(() => {
      const stmt = this.s.insert;
      try {
        for (const row of rows) stmt.run(row);
      } catch (error) {
        throw asQueryFailed(error, stmt.source) as Error;
      }
    }, tasks.length > 1);
  }

  /** Row by row, so each statement's change count says whether its row went in. */
  insertNew(tasks: TaskEntity[]): Promise<string[]> {
    if (tasks.length === 0) return Promise.resolve([]);
    const rows = this.values(tasks);
    return this.submit(() => {
      const stmt = this.s.insertNew;
      try {
        return tasks.filter((_, i) => changedOne(stmt.run(rows[i]))).map((task) => task.id);
      } catch (error) {
        throw asQueryFailed(error, stmt.source) as Error;
      }
    }, true);
  }

  /** Each task's column values, in column order; an absent property gets the column's default. */
  private values(tasks: TaskEntity[]): unknown[][] {
    return tasks.map((task) =>
      this.columns.map(({ prop, fallback }) => (task[prop] === undefined ? fallback : task[prop])),
    );
  }

  findById(id: string, tenant?: string): Promise<TaskEntity | null> {
    return this.read(
      () => this.s.findById,
      (stmt) => entity(stmt.get({ id, tenant: tenant ?? null })),
    );
  }

  findByIdempotencyKey(key: string, tenant = DEFAULT_TENANT): Promise<TaskEntity | null> {
    return this.read(
      () => this.s.findByKey,
      (stmt) => entity(stmt.get({ key, tenant })),
    );
  }

  actorOf(id: string): Promise<TaskActor | null> {
    return this.read(
      () => this.s.actorOf,
      (stmt) => (stmt.get(id) as TaskActor | undefined) ?? null,
    );
  }

  list(filter: ListTasksFilter): Promise<TaskEntity[]> {
    const where: string[] = [];
    if (filter.tenant !== undefined) where.push('tenant = @tenant');
    if (filter.status) where.push('status = @status');
    if (filter.action) where.push('action = @action');
    if (filter.createdAfter !== undefined) where.push('created_at > @createdAfter');
    // Only the tighter of the two upper bounds (either one implies the other): given both, with
    // statistics (ANALYZE) SQLite skip-scans the tenant column and sorts in a temporary B-tree.
    const { before, createdBefore } = filter;
    const cursorBounds =
      before !== undefined && (createdBefore === undefined || before.createdAt < createdBefore);
    if (createdBefore !== undefined && !cursorBounds) where.push('created_at < @createdBefore');
    // A row value, not keyset()'s OR: the planner turns it into one range of the index.
    if (cursorBounds) where.push('(created_at, id) < (@cursorAt, @cursorId)');
    const sql = `SELECT ${this.select} FROM ${this.table}
      ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY created_at DESC, id DESC LIMIT @limit`;
    const params = {
      tenant: filter.tenant,
      status: filter.status,
      action: filter.action,
      createdAfter: filter.createdAfter,
      createdBefore: filter.createdBefore,
      cursorAt: filter.before?.createdAt,
      cursorId: filter.before?.id,
      limit: filter.limit,
    };
    // better-sqlite3 refuses named parameters the statement does not use.
    const used = Object.fromEntries(
      Object.entries(params).filter(([name]) => sql.includes(`@${name}`)),
    );
    return this.read(
      () => this.listStatement(sql),
      (stmt) => entities(stmt.all(used)),
    );
  }

  /** One prepared statement per combination of filters (at most 32). */
  private listStatement(sql: string): Statement {
    let stmt = this.lists.get(sql);
    if (!stmt) {
      stmt = this.db.prepare(sql);
      this.lists.set(sql, stmt);
    }
    return stmt;
  }

  claimActor(
    id: string,
    attempt: number,
    token: string,
    redelivered: boolean,
  ): Promise<TaskActor | null> {
    const params = { id, attempt, token, now: Date.now() };
    return this.submit(
      () =>
        ((redelivered ? this.s.claimRedelivered : this.s.claim).get(params) as
          TaskActor | undefined) ?? null,
    );
  }

  protected completeJson(id: string, token: string, result: string, now: number): Promise<boolean> {
    const params = { id, token, result, now: Math.trunc(now) };
    return this.submit(() => changedOne(this.s.complete.run(params)));
  }

  protected failAt(
    id: string,
    token: string,
    error: string,
    final: boolean,
    now: number,
    retryAt?: number,
  ): Promise<boolean> {
    const params = final
      ? { id, token, error, now: Math.trunc(now) }
      : { id, token, error, now: Math.trunc(now), retryAt: retryAt ?? null };
    return this.submit(() => changedOne((final ? this.s.failFinal : this.s.failRetry).run(params)));
  }

  progress(id: string, token: string, percent: number, message: string | null): Promise<boolean> {
    const params = { id, token, percent, message, now: Date.now() };
    return this.submit(() => changedOne(this.s.progress.run(params)));
  }

  cancel(id: string, tenant?: string): Promise<boolean> {
    const params = { id, tenant: tenant ?? null, now: Date.now() };
    return this.submit(() => changedOne(this.s.cancel.run(params)));
  }

  requeueFinished(id: string, tenant?: string): Promise<boolean> {
    const params = { id, tenant: tenant ?? null, now: Date.now() };
    return this.submit(() => changedOne(this.s.requeueFinished.run(params)));
  }

  cancelledAmong(ids: string[]): Promise<string[]> {
    if (ids.length === 0) return Promise.resolve([]);
    const params = { ids: JSON.stringify(ids) };
    return this.read(
      () => this.s.cancelledAmong,
      (stmt) => stmt.all(params) as string[],
    );
  }

  countQueued(): Promise<number> {
    return this.read(
      () => this.s.countQueued,
      (stmt) => stmt.get() as number,
    );
  }

  requeueRunning(queues: string[]): Promise<number> {
    if (queues.length === 0) return Promise.resolve(0);
    const params = { queues: JSON.stringify(queues), now: Date.now() };
    return this.submit(() => this.s.requeueRunning.run(params).changes);
  }

  queuedKeys(limit: number, after?: TaskKey): Promise<TaskKey[]> {
    return this.read(
      () => (after ? this.s.queuedKeysAfter : this.s.queuedKeys),
      (stmt) =>
        stmt.all(
          after ? { limit, createdAt: after.createdAt, id: after.id } : { limit },
        ) as TaskKey[],
    );
  }

  queuedByIds(ids: string[]): Promise<TaskEntity[]> {
    if (ids.length === 0) return Promise.resolve([]);
    const params = { ids: JSON.stringify(ids) };
    return this.read(
      () => this.s.queuedByIds,
      (stmt) => entities(stmt.all(params)),
    );
  }

  staleQueued(
    queue: string,
    before: number,
    limit: number,
    after?: { updatedAt: number; id: string },
  ): Promise<TaskEntity[]> {
    const params = after
      ? { queue, before, limit, afterAt: after.updatedAt, afterId: after.id }
      : { queue, before, limit };
    return this.read(
      () => (after ? this.s.staleQueuedAfter : this.s.staleQueued),
      (stmt) => entities(stmt.all(params)),
    );
  }

  staleRunning(queue: string, before: number, limit: number): Promise<TaskEntity[]> {
    return this.read(
      () => this.s.staleRunning,
      (stmt) => entities(stmt.all({ queue, before, limit })),
    );
  }

  countQueuedDue(queue: string, now: number): Promise<number> {
    return this.read(
      () => this.s.countQueuedDue,
      (stmt) => stmt.get({ queue, now }) as number,
    );
  }

  oldestQueuedAt(queue: string, now: number): Promise<number | null> {
    return this.read(
      () => this.s.oldestQueuedAt,
      (stmt) => (stmt.get({ queue, now }) as number | undefined) ?? null,
    );
  }

  reclaim(id: string, staleToken: string, attempt: number, token: string): Promise<boolean> {
    const params = { id, staleToken, attempt, token, now: Date.now() };
    return this.submit(() => changedOne(this.s.reclaim.run(params)));
  }

  exists(id: string): Promise<boolean> {
    return this.read(
      () => this.s.exists,
      (stmt) => stmt.get(id) !== undefined,
    );
  }

  dueCallbacks(now: number, limit: number): Promise<TaskEntity[]> {
    return this.read(
      () => this.s.dueCallbacks,
      (stmt) => entities(stmt.all({ now, limit })),
    );
  }

  protected updateCallback(
    id: string,
    held: { attempts: number; nextAt: number | null },
    set: CallbackChange,
  ): Promise<boolean> {
    const where = { id, heldAttempts: held.attempts, heldNextAt: held.nextAt };
    if ('attempts' in set) {
      const params = { ...where, attempts: set.attempts, nextAt: set.nextAt };
      return this.submit(() => changedOne(this.s.claimCallback.run(params)));
    }
    const params = {
      ...where,
      status: set.status,
      error: set.error,
      nextAt: set.nextAt,
    };
    return this.submit(() => changedOne(this.s.settleCallback.run(params)));
  }

  deleteExpired(cutoff: number, limit: number): Promise<number> {
    return this.submit(() => this.s.deleteExpired.run({ cutoff, limit }).changes);
  }

  /**
   * A read, at once. Preparing on first use and running both throw synchronously; they come
   * back as a rejection (SQLite errors as QueryFailedError), as from any other store.
   */
  private async read<S extends Statement, T>(statement: () => S, run: (stmt: S) => T): Promise<T> {
    let stmt: S | undefined;
    try {
      stmt = statement();
      return run(stmt);
    } catch (error) {
      throw asQueryFailed(error, stmt?.source ?? 'prepare') as Error;
    }
  }

  /** Queues `run` for the next group commit; settles after that commit. */
  private submit<T>(run: () => T, atomic = false): Promise<T> {
    return this.commits.submit({ run, atomic }) as Promise<T>;
  }

  private commitBatch(batch: Write[]): Outcome<unknown>[] | RetryLater {
    // A TypeORM transaction is open across awaits: do not join it (see the class comment).
    if (this.db.open && this.db.inTransaction) return { retryAfterMs: 1 };
    try {
      return this.inTransaction.immediate(batch);
    } catch (error) {
      // The transaction rolled back (or never began): none of its writes happened.
      throw asQueryFailed(error, 'BEGIN IMMEDIATE … COMMIT');
    }
  }

  private runOne(write: Write): Outcome<unknown> {
    try {
      return { ok: true, value: write.atomic ? this.underSavepoint(write.run) : write.run() };
    } catch (error) {
      if (failsWholeSqliteBatch(error)) throw error;
      return { ok: false, error: asQueryFailed(error, 'task statement') };
    }
  }
}

function changedOne(result: { changes: number }): boolean {
  return result.changes === 1;
}

function entity(row: unknown): TaskEntity | null {
  return row ? Object.assign(new TaskEntity(), row) : null;
}

function entities(rows: unknown[]): TaskEntity[] {
  return rows.map((row) => Object.assign(new TaskEntity(), row));
}

/**
 * Errors from SQLite look as TypeORM's would (QueryFailedError with the driver's error inside),
 * so callers such as the unique-key check in TasksService work on either database.
 */
function asQueryFailed(error: unknown, sql: string): unknown {
  if (error instanceof QueryFailedError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !code.startsWith('SQLITE_')) return error;
  return new QueryFailedError(sql, undefined, error as Error);
}

import { createHash } from 'node:crypto';
import type { Pool, QueryResult } from 'pg';
import { QueryFailedError, type DataSource, type Driver, type EntityMetadata } from 'typeorm';
import type { ColumnMetadata } from 'typeorm/metadata/ColumnMetadata';
import { DEFAULT_TENANT, type TaskActor } from '../auth/actor';
import { GroupCommit, type Outcome } from '../common/group-commit';
import { PgQueueTable } from './pg-queue-table';
import {
  type CallbackChange,
  type ListTasksFilter,
  type TaskKey,
  TaskStatements,
} from './task-statements';
import { TERMINAL_STATUSES, TaskStatus } from './task-status.enum';
import { TaskEntity } from './task.entity';

/**
 * Callers per UPDATE at most: one statement holds few row locks, and stays a batch of primary-key
 * probes (larger ones, on a table not yet analysed, get planned as a scan of the whole table).
 */
const MAX_UPDATES = 128;
/** Rows per INSERT at most when several callers share it (one caller's rows always go together). */
const MAX_INSERT_ROWS = 2000;
/**
 * Statements of one kind in flight at once. Writes arriving meanwhile wait and go together in
 * the next one, so a busy pipeline gets bigger batches instead of more round trips.
 */
const MAX_IN_FLIGHT = 2;
/** Column types TypeORM's PostgresDriver.preparePersistentValue passes through unchanged. */
const PLAIN_TYPES = new Set(['varchar', 'text', 'int', 'integer', 'bigint']);
/** A batch PostgreSQL aborted as a deadlock victim changed nothing, so it is simply sent again. */
const DEADLOCK_RETRIES = 5;
const DEADLOCK_DETECTED = '40P01';

/**
 * The pg Pool of a TypeORM DataSource, or undefined for any other driver. TypeORM's
 * PostgresDriver keeps its pool in `master` (no replication configured).
 */
export function pgPool(dataSource: DataSource): Pool | undefined {
  if (dataSource.options.type !== 'postgres') return undefined;
  const pool = (dataSource.driver as unknown as { master?: Pool }).master;
  return pool && typeof pool.query === 'function' ? pool : undefined;
}

/** The columns of an UPDATE's `v`: a write's property, typed as this task column (or boolean). */
type Fields<W> = [keyof W & string, keyof TaskEntity | 'boolean'][];

interface Claim {
  id: string;
  attempt: number;
  token: string;
  redelivered: boolean;
  now: number;
}
interface Complete {
  id: string;
  token: string;
  result: string;
  now: number;
}
interface Fail {
  id: string;
  token: string;
  error: string;
  final: boolean;
  now: number;
  retryAt: number;
}
interface Progress {
  id: string;
  token: string;
  percent: number;
  message: string | null;
  now: number;
}

/**
 * The task table on PostgreSQL, run on the pg Pool TypeORM opened as named (prepared)
 * statements. The hot ones take arrays: `UPDATE … FROM unnest($1, $2, …)` and
 * `INSERT … SELECT * FROM unnest(…)` change any number of rows with one fixed SQL text, so each
 * connection parses and plans it once. The cold ones (cancel, retry, the reconciler's, the
 * callbacks', retention, reads) run one call per statement, each its own implicit transaction.
 *
 * Hot writes are group-committed: all claims (or completes, fails, progress updates, inserts)
 * submitted in one event-loop turn go in one statement, which PostgreSQL runs as one implicit
 * transaction, and each caller's promise settles only once that statement has committed (pg
 * reports a result at ReadyForQuery, after the commit). `RETURNING id` tells each caller exactly
 * whether its own row changed. A statement that fails changed nothing; it rejects its callers,
 * except that a failed INSERT shared by several callers is re-run per caller, so one caller's
 * bad row (a duplicate idempotency key) rejects that caller only, with TypeORM's
 * QueryFailedError around pg's error as TypeORM itself would throw it.
 *
 * Statements run on pool connections of their own (never on a connection inside a TypeORM
 * transaction), so nothing here can be rolled back by somebody else's transaction.
 */
export class PgTaskStatements extends TaskStatements {
  private readonly columns: ColumnMetadata[];
  private readonly sql: ReturnType<PgTaskStatements['statements']>;
  private readonly claims: GroupCommit<Claim, TaskActor | null>;
  private readonly completes: GroupCommit<Complete, boolean>;
  private readonly fails: GroupCommit<Fail, boolean>;
  private readonly progresses: GroupCommit<Progress, boolean>;
  private readonly inserts: GroupCommit<TaskEntity[], void>;
  /**
   * Each column as an INSERT fills it: its value when a property is absent, whether the
   * database's default is that value (so the column may be left out), and how a value is sent.
   */
  private readonly inserted: {
    col: ColumnMetadata;
    fallback: unknown;
    omissible: boolean;
    prepare: (value: unknown) => unknown;
  }[];
  private readonly insertStatements = new Map<string, { name: string; text: string }>();

  constructor(
    private readonly pool: Pool,
    private readonly driver: Driver,
    metadata: EntityMetadata,
  ) {
    super();
    this.columns = metadata.columns;
    this.inserted = this.columns.map((col) => {
      const computed = typeof col.default === 'function';
      return {
        col,
        fallback: computed ? null : ((col.default as unknown) ?? null),
        // A computed default is the database's to compute: sent as null, as before.
        omissible: !computed && (col.default !== undefined || col.isNullable),
        // TypeORM's preparation returns these types as they are; only its checks cost.
        prepare:
          !col.transformer && PLAIN_TYPES.has(String(col.type))
            ? (value: unknown) => value
            : (value: unknown): unknown => driver.preparePersistentValue(value, col) as unknown,
      };
    });
    this.sql = this.statements(metadata);
    const updates = {
      maxBatch: MAX_UPDATES,
      key: (write: { id: string }): string => write.id,
      maxInFlight: MAX_IN_FLIGHT,
    };
    this.claims = new GroupCommit<Claim, TaskActor | null>(
      (batch) =>
        this.update(this.sql.claim, batch, (row) =>
          row ? { keyName: row.keyName as string | null, tenant: row.tenant as string } : null,
        ),
      updates,
    );
    this.completes = new GroupCommit<Complete, boolean>(
      (batch) => this.update(this.sql.complete, batch),
      updates,
    );
    this.fails = new GroupCommit<Fail, boolean>(
      (batch) => this.update(this.sql.fail, batch),
      updates,
    );
    this.progresses = new GroupCommit<Progress, boolean>(
      (batch) => this.update(this.sql.progress, batch),
      updates,
    );
    this.inserts = new GroupCommit<TaskEntity[], void>((batch) => this.insertBatch(batch), {
      maxBatch: MAX_INSERT_ROWS,
      size: (rows) => rows.length,
      maxInFlight: MAX_IN_FLIGHT,
    });
  }

  private statements(metadata: EntityMetadata) {
    const q = (name: string) => `"${name.replace(/"/g, '""')}"`;
    const byProp = new Map(this.columns.map((col) => [col.propertyName, col]));
    const column = (prop: keyof TaskEntity): ColumnMetadata => {
      const found = byProp.get(prop);
      if (!found) throw new Error(`task entity has no column for ${prop}`);
      return found;
    };
    // Column names and parameter types come from the entity, so the SQL follows its mapping.
    const c = (prop: keyof TaskEntity) => q(column(prop).databaseName);
    const typeOf = (col: ColumnMetadata) => this.driver.normalizeType(col);
    /** `unnest($1::type[], …) AS v(name, …)`: one array parameter per field, typed as `prop`. */
    const unnest = <W>(fields: Fields<W>) =>
      `unnest(${fields
        .map(([, as], i) => `$${i + 1}::${as === 'boolean' ? 'boolean' : typeOf(column(as))}[]`)
        .join(', ')}) AS v(${fields.map(([name]) => name).join(', ')})`;
    const T = metadata.schema
      ? `${q(metadata.schema)}.${q(metadata.tableName)}`
      : q(metadata.tableName);
    const status = (value: TaskStatus) => `'${value}'`;
    // The status conditions below are CASE expressions on purpose: the planner cannot make an
    // index scan of them, so every statement finds its rows through the primary key, one probe
    // per id of v. Written plainly, a table without statistics yet (any new one) or with stale
    // ones looks to the planner as if few rows were queued or running, and it scanned every
    // queued row for each batch of claims, and every index entry ever made for a running row
    // (dead ones too, until a vacuum) for each batch of results: O(backlog) per statement.
    const isRunning = `CASE t.${c('status')} WHEN ${status(TaskStatus.Running)} THEN true ELSE false END`;
    // The fence of every outcome: the row is running under the caller's claim token.
    const held = (id: string, token: string) =>
      `t.${c('id')} = ${id} AND t.${c('claimToken')} = ${token} AND ${isRunning}`;
    const claimed = `WHERE ${held('v.id', 'v.token')}`;
    // A terminal change of a task with a callback URL queues its callback.
    const callbackStatus = `CASE WHEN t.${c('callbackUrl')} IS NULL THEN NULL ELSE 'pending' END`;
    const callbackNextAt = (now: string) =>
      `CASE WHEN t.${c('callbackUrl')} IS NULL THEN NULL ELSE ${now} END`;
    const callbackPending = (now: string) =>
      `${c('callbackStatus')} = ${callbackStatus}, ${c('callbackNextAt')} = ${callbackNextAt(now)}`;
    const callbackHeld = `t.${c('id')} = $1 AND t.${c('callbackStatus')} = 'pending'
      AND t.${c('callbackAttempts')} = $2 AND t.${c('callbackNextAt')} = $3`;
    const rows = `SELECT ${this.columns.map((col) => `t.${q(col.databaseName)}`).join(', ')} FROM ${T} AS t`;
    const idType = `${typeOf(column('id'))}[]`;
    const queuedKeys = (after: boolean) =>
      named(
        'queued_keys',
        `SELECT t.${c('id')} AS id, t.${c('queue')} AS queue, t.${c('createdAt')} AS "createdAt"
         FROM ${T} AS t WHERE t.${c('status')} = ${status(TaskStatus.Queued)}
         ${after ? `AND ${keyset(`t.${c('createdAt')}`, `t.${c('id')}`, '>', '$2', '$3')}` : ''}
         ORDER BY t.${c('createdAt')}, t.${c('id')} LIMIT $1`,
      );
    const staleQueued = (after: boolean) =>
      named(
        'stale_queued',
        `${rows} WHERE t.${c('status')} = ${status(TaskStatus.Queued)} AND t.${c('queue')} = $1
           AND t.${c('updatedAt')} < $2 AND (t.${c('runAt')} IS NULL OR t.${c('runAt')} < $2)
           ${after ? `AND ${keyset(`t.${c('updatedAt')}`, `t.${c('id')}`, '>', '$4', '$5')}` : ''}
         ORDER BY t.${c('updatedAt')}, t.${c('id')} LIMIT $3`,
      );
    const returning = `RETURNING t.${c('id')} AS id`;
    const names = this.columns.map((col) => q(col.databaseName)).join(', ');
    const named = (kind: string, text: string) => ({
      name: `taskq_${kind}_${createHash('sha1').update(text).digest('hex').slice(0, 16)}`,
      text,
    });
    /** An UPDATE whose `v` has one column per field, filled from the writes' properties. */
    const updating = <W>(kind: string, fields: Fields<W>, text: string) => ({
      ...named(kind, text),
      fields: fields.map(([field]) => field),
    });
    const claimFields: Fields<Claim> = [
      ['id', 'id'],
      ['attempt', 'attempt'],
      ['token', 'claimToken'],
      ['now', 'startedAt'],
      ['redelivered', 'boolean'],
    ];
    const completeFields: Fields<Complete> = [
      ['id', 'id'],
      ['token', 'claimToken'],
      ['result', 'result'],
      ['now', 'processedAt'],
    ];
    const failFields: Fields<Fail> = [
      ['id', 'id'],
      ['token', 'claimToken'],
      ['error', 'error'],
      ['now', 'processedAt'],
      ['final', 'boolean'],
      ['retryAt', 'runAt'],
    ];
    const progressFields: Fields<Progress> = [
      ['id', 'id'],
      ['token', 'claimToken'],
      ['percent', 'progress'],
      ['message', 'progressMessage'],
      ['now', 'updatedAt'],
    ];
    return {
      /**
       * The INSERT of `cols` (every other column takes its default), plain or (`skipTaken`)
       * leaving out rows whose idempotency key is taken and naming those that went in.
       */
      insert: (cols: ColumnMetadata[], skipTaken: boolean) =>
        named(
          skipTaken ? 'insert_new' : 'insert',
          `INSERT INTO ${T} (${cols.map((col) => q(col.databaseName)).join(', ')}) ` +
            `SELECT * FROM unnest(${cols.map((col, i) => `$${i + 1}::${typeOf(col)}[]`).join(', ')})` +
            (skipTaken
              ? ` ON CONFLICT (${c('tenant')}, ${c('idempotencyKey')}) DO NOTHING
                 RETURNING ${c('id')} AS id`
              : ''),
        ),
      // `$2 IS NULL`: an internal caller that names no tenant.
      findById: named(
        'find',
        `SELECT ${names} FROM ${T} WHERE ${c('id')} = $1
           AND ($2::${typeOf(column('tenant'))} IS NULL OR ${c('tenant')} = $2) LIMIT 1`,
      ),
      actorOf: named(
        'actor_of',
        `SELECT ${c('actorKey')} AS "keyName", ${c('tenant')} AS tenant FROM ${T}
         WHERE ${c('id')} = $1 LIMIT 1`,
      ),
      // The claim condition: a queued row of an earlier attempt, or, for a
      // redelivered message, a running row of this same attempt.
      claim: updating(
        'claim',
        claimFields,
        `UPDATE ${T} AS t SET ${c('status')} = ${status(TaskStatus.Running)},
           ${c('attempt')} = v.attempt, ${c('deliveries')} = t.${c('deliveries')} + 1,
           ${c('claimToken')} = v.token, ${c('startedAt')} = v.now, ${c('updatedAt')} = v.now
         FROM ${unnest(claimFields)}
         WHERE t.${c('id')} = v.id AND CASE t.${c('status')}
           WHEN ${status(TaskStatus.Queued)} THEN t.${c('attempt')} < v.attempt
           WHEN ${status(TaskStatus.Running)} THEN v.redelivered AND t.${c('attempt')} = v.attempt
           ELSE false END
         ${returning}, t.${c('actorKey')} AS "keyName", t.${c('tenant')} AS tenant`,
      ),
      complete: updating(
        'complete',
        completeFields,
        `UPDATE ${T} AS t SET ${c('status')} = ${status(TaskStatus.Completed)},
           ${c('result')} = v.result, ${c('error')} = NULL, ${c('processedAt')} = v.now,
           ${c('updatedAt')} = v.now, ${c('claimToken')} = NULL, ${callbackPending('v.now')}
         FROM ${unnest(completeFields)}
         ${claimed} ${returning}`,
      ),
      // Final: failed, processed, callback queued. Retry: queued again, callback untouched.
      fail: updating(
        'fail',
        failFields,
        `UPDATE ${T} AS t SET
           ${c('status')} = CASE WHEN v.final THEN ${status(TaskStatus.Failed)}
             ELSE ${status(TaskStatus.Queued)} END,
           ${c('error')} = v.error,
           ${c('processedAt')} = CASE WHEN v.final THEN v.now ELSE NULL END,
           ${c('updatedAt')} = v.now, ${c('claimToken')} = NULL,
           ${c('runAt')} = CASE WHEN v.final THEN t.${c('runAt')} ELSE v.retryAt END,
           ${c('callbackStatus')} = CASE WHEN v.final THEN ${callbackStatus}
             ELSE t.${c('callbackStatus')} END,
           ${c('callbackNextAt')} = CASE WHEN v.final THEN ${callbackNextAt('v.now')}
             ELSE t.${c('callbackNextAt')} END
         FROM ${unnest(failFields)}
         ${claimed} ${returning}`,
      ),
      progress: updating(
        'progress',
        progressFields,
        `UPDATE ${T} AS t SET ${c('progress')} = v.percent,
           ${c('progressMessage')} = v.message, ${c('updatedAt')} = v.now
         FROM ${unnest(progressFields)}
         ${claimed} ${returning}`,
      ),
      findByKey: named(
        'find_key',
        `${rows} WHERE t.${c('tenant')} = $2 AND t.${c('idempotencyKey')} = $1 LIMIT 1`,
      ),
      reclaim: named(
        'reclaim',
        `UPDATE ${T} AS t SET ${c('attempt')} = $3, ${c('deliveries')} = t.${c('deliveries')} + 1,
           ${c('claimToken')} = $4,
           ${c('startedAt')} = $5, ${c('updatedAt')} = $5
         WHERE ${held('$1', '$2')} AND t.${c('attempt')} < $3`,
      ),
      cancel: named(
        'cancel',
        `UPDATE ${T} AS t SET ${c('status')} = ${status(TaskStatus.Cancelled)},
           ${c('processedAt')} = $2, ${c('updatedAt')} = $2,
           ${callbackPending(`$2::${typeOf(column('callbackNextAt'))}`)}
         WHERE t.${c('id')} = $1
           AND ($3::${typeOf(column('tenant'))} IS NULL OR t.${c('tenant')} = $3)
           AND t.${c('status')} IN (${status(TaskStatus.Queued)}, ${status(TaskStatus.Running)})`,
      ),
      // The redrive wakes the postgres driver's listeners, as an insert's trigger does: the
      // API process that runs it may consume nothing, and other processes would wait for a poll.
      requeueFinished: named(
        'requeue_finished',
        `WITH r AS (UPDATE ${T} AS t SET ${c('status')} = ${status(TaskStatus.Queued)}, ${c('attempt')} = 0,
           ${c('deliveries')} = 0, ${c('result')} = NULL, ${c('error')} = NULL, ${c('progress')} = NULL,
           ${c('progressMessage')} = NULL, ${c('claimToken')} = NULL, ${c('startedAt')} = NULL,
           ${c('processedAt')} = NULL, ${c('runAt')} = NULL, ${c('updatedAt')} = $2,
           ${c('callbackStatus')} = NULL, ${c('callbackAttempts')} = 0,
           ${c('callbackError')} = NULL, ${c('callbackNextAt')} = NULL
         WHERE t.${c('id')} = $1
           AND ($3::${typeOf(column('tenant'))} IS NULL OR t.${c('tenant')} = $3)
           AND t.${c('status')} IN (${status(TaskStatus.Failed)}, ${status(TaskStatus.Cancelled)})
         RETURNING t.${c('queue')} AS queue)
         SELECT pg_notify('taskq:' || current_schema(), r.queue) FROM r`,
      ),
      cancelledAmong: named(
        'cancelled_among',
        `SELECT t.${c('id')} AS id FROM ${T} AS t
         WHERE t.${c('id')} = ANY($1::${idType}) AND t.${c('status')} = ${status(TaskStatus.Cancelled)}`,
      ),
      countQueued: named(
        'count_queued',
        `SELECT count(*)::int AS n FROM ${T} AS t WHERE t.${c('status')} = ${status(TaskStatus.Queued)}`,
      ),
      requeueRunning: named(
        'requeue_running',
        `UPDATE ${T} AS t SET ${c('status')} = ${status(TaskStatus.Queued)},
           ${c('claimToken')} = NULL, ${c('updatedAt')} = $2
         WHERE t.${c('status')} = ${status(TaskStatus.Running)}
           AND t.${c('queue')} = ANY($1::${typeOf(column('queue'))}[])`,
      ),
      queuedKeys: queuedKeys(false),
      queuedKeysAfter: queuedKeys(true),
      queuedByIds: named(
        'queued_by_ids',
        `${rows} WHERE t.${c('id')} = ANY($1::${idType})
           AND t.${c('status')} = ${status(TaskStatus.Queued)}`,
      ),
      staleQueued: staleQueued(false),
      staleQueuedAfter: staleQueued(true),
      staleRunning: named(
        'stale_running',
        `${rows} WHERE t.${c('status')} = ${status(TaskStatus.Running)} AND t.${c('queue')} = $1
           AND t.${c('updatedAt')} < $2 ORDER BY t.${c('updatedAt')} LIMIT $3`,
      ),
      countQueuedDue: named(
        'count_queued_due',
        `SELECT count(*)::int AS n FROM ${T} AS t
         WHERE t.${c('status')} = ${status(TaskStatus.Queued)} AND t.${c('queue')} = $1
           AND (t.${c('runAt')} IS NULL OR t.${c('runAt')} <= $2)`,
      ),
      oldestQueuedAt: named(
        'oldest_queued_at',
        `SELECT coalesce(t.${c('runAt')}, t.${c('createdAt')}) AS at FROM ${T} AS t
         WHERE t.${c('status')} = ${status(TaskStatus.Queued)} AND t.${c('queue')} = $1
           AND (t.${c('runAt')} IS NULL OR t.${c('runAt')} <= $2)
         ORDER BY t.${c('createdAt')} LIMIT 1`,
      ),
      exists: named('exists', `SELECT 1 FROM ${T} AS t WHERE t.${c('id')} = $1 LIMIT 1`),
      dueCallbacks: named(
        'due_callbacks',
        `${rows} WHERE t.${c('callbackStatus')} = 'pending' AND t.${c('callbackNextAt')} <= $1
         ORDER BY t.${c('callbackNextAt')} LIMIT $2`,
      ),
      claimCallback: named(
        'claim_callback',
        `UPDATE ${T} AS t SET ${c('callbackAttempts')} = $4, ${c('callbackNextAt')} = $5
         WHERE ${callbackHeld}`,
      ),
      settleCallback: named(
        'settle_callback',
        `UPDATE ${T} AS t SET ${c('callbackStatus')} = $4, ${c('callbackError')} = $5,
           ${c('callbackNextAt')} = $6 WHERE ${callbackHeld}`,
      ),
      deleteExpired: named(
        'delete_expired',
        `DELETE FROM ${T} WHERE ${c('id')} IN (SELECT t.${c('id')} FROM ${T} AS t
           WHERE t.${c('status')} IN (${TERMINAL_STATUSES.map(status).join(', ')})
             AND t.${c('processedAt')} < $1
             AND (t.${c('callbackStatus')} IS NULL OR t.${c('callbackStatus')} <> 'pending')
           LIMIT $2)`,
      ),
      /** The list query for one combination of filters (see list()). */
      list: (where: string[], limit: string) =>
        named(
          'list',
          `${rows} ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
           ORDER BY t.${c('createdAt')} DESC, t.${c('id')} DESC LIMIT ${limit}`,
        ),
      columns: {
        tenant: `t.${c('tenant')}`,
        status: `t.${c('status')}`,
        action: `t.${c('action')}`,
        createdAt: `t.${c('createdAt')}`,
        id: `t.${c('id')}`,
      },
    };
  }

  private table?: PgQueueTable;

  /** The task table as the postgres driver's queue, on this pool. */
  override queueTable(): PgQueueTable {
    this.table ??= new PgQueueTable(this.pool);
    return this.table;
  }

  /** All rows in one statement: all or none. */
  insert(tasks: TaskEntity[]): Promise<void> {
    if (tasks.length === 0) return Promise.resolve();
    return this.inserts.submit(tasks);
  }

  /**
   * One statement of its own (not group-committed with other inserts: a skipped row is no
   * error, so there is nothing to re-run per caller); RETURNING names the rows that went in.
   */
  async insertNew(tasks: TaskEntity[]): Promise<string[]> {
    if (tasks.length === 0) return [];
    const { statement, values } = this.insertStatement(tasks, true);
    const result = await this.query(statement, values);
    return (result.rows as { id: string }[]).map((row) => row.id);
  }

  async findById(id: string, tenant?: string): Promise<TaskEntity | null> {
    return (await this.rows(this.sql.findById, [id, tenant ?? null]))[0] ?? null;
  }

  async findByIdempotencyKey(key: string, tenant = DEFAULT_TENANT): Promise<TaskEntity | null> {
    return (await this.rows(this.sql.findByKey, [key, tenant]))[0] ?? null;
  }

  async actorOf(id: string): Promise<TaskActor | null> {
    return ((await this.query(this.sql.actorOf, [id])).rows[0] as TaskActor | undefined) ?? null;
  }

  list(filter: ListTasksFilter): Promise<TaskEntity[]> {
    const col = this.sql.columns;
    const where: string[] = [];
    const values: unknown[] = [];
    const param = (value: unknown): string => `$${values.push(value)}`;
    if (filter.tenant !== undefined) where.push(`${col.tenant} = ${param(filter.tenant)}`);
    if (filter.status) where.push(`${col.status} = ${param(filter.status)}`);
    if (filter.action) where.push(`${col.action} = ${param(filter.action)}`);
    if (filter.createdAfter !== undefined) {
      where.push(`${col.createdAt} > ${param(filter.createdAfter)}`);
    }
    if (filter.createdBefore !== undefined) {
      where.push(`${col.createdAt} < ${param(filter.createdBefore)}`);
    }
    if (filter.before) {
      const at = param(filter.before.createdAt);
      // A row value, not keyset()'s OR: the planner turns it into one range of the index.
      where.push(`(${col.createdAt}, ${col.id}) < (${at}, ${param(filter.before.id)})`);
    }
    return this.rows(this.sql.list(where, param(filter.limit)), values);
  }

  claimActor(
    id: string,
    attempt: number,
    token: string,
    redelivered: boolean,
  ): Promise<TaskActor | null> {
    return this.claims.submit({ id, attempt, token, redelivered, now: Date.now() });
  }

  protected completeJson(id: string, token: string, result: string, now: number): Promise<boolean> {
    return this.completes.submit({ id, token, result, now });
  }

  protected failAt(
    id: string,
    token: string,
    error: string,
    final: boolean,
    now: number,
    retryAt = now,
  ): Promise<boolean> {
    return this.fails.submit({ id, token, error, final, now, retryAt });
  }

  progress(id: string, token: string, percent: number, message: string | null): Promise<boolean> {
    return this.progresses.submit({ id, token, percent, message, now: Date.now() });
  }

  async cancel(id: string, tenant?: string): Promise<boolean> {
    return (await this.query(this.sql.cancel, [id, Date.now(), tenant ?? null])).rowCount === 1;
  }

  async requeueFinished(id: string, tenant?: string): Promise<boolean> {
    const values = [id, Date.now(), tenant ?? null];
    return (await this.query(this.sql.requeueFinished, values)).rowCount === 1;
  }

  async cancelledAmong(ids: string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const result = await this.query(this.sql.cancelledAmong, [ids]);
    return (result.rows as { id: string }[]).map((row) => row.id);
  }

  async countQueued(): Promise<number> {
    return ((await this.query(this.sql.countQueued, [])).rows[0] as { n: number }).n;
  }

  async requeueRunning(queues: string[]): Promise<number> {
    if (queues.length === 0) return 0;
    return (await this.query(this.sql.requeueRunning, [queues, Date.now()])).rowCount ?? 0;
  }

  async queuedKeys(limit: number, after?: TaskKey): Promise<TaskKey[]> {
    const result = after
      ? await this.query(this.sql.queuedKeysAfter, [limit, after.createdAt, after.id])
      : await this.query(this.sql.queuedKeys, [limit]);
    // BIGINT comes back as a string.
    return (result.rows as { id: string; queue: string; createdAt: string }[]).map((row) => ({
      ...row,
      createdAt: Number(row.createdAt),
    }));
  }

  queuedByIds(ids: string[]): Promise<TaskEntity[]> {
    if (ids.length === 0) return Promise.resolve([]);
    return this.rows(this.sql.queuedByIds, [ids]);
  }

  staleQueued(
    queue: string,
    before: number,
    limit: number,
    after?: { updatedAt: number; id: string },
  ): Promise<TaskEntity[]> {
    return after
      ? this.rows(this.sql.staleQueuedAfter, [queue, before, limit, after.updatedAt, after.id])
      : this.rows(this.sql.staleQueued, [queue, before, limit]);
  }

  staleRunning(queue: string, before: number, limit: number): Promise<TaskEntity[]> {
    return this.rows(this.sql.staleRunning, [queue, before, limit]);
  }

  async countQueuedDue(queue: string, now: number): Promise<number> {
    return ((await this.query(this.sql.countQueuedDue, [queue, now])).rows[0] as { n: number }).n;
  }

  async oldestQueuedAt(queue: string, now: number): Promise<number | null> {
    const row = (await this.query(this.sql.oldestQueuedAt, [queue, now])).rows[0] as
      { at: string | number } | undefined;
    // BIGINT comes back as a string.
    return row ? Number(row.at) : null;
  }

  async reclaim(id: string, staleToken: string, attempt: number, token: string): Promise<boolean> {
    const values = [id, staleToken, attempt, token, Date.now()];
    return (await this.query(this.sql.reclaim, values)).rowCount === 1;
  }

  async exists(id: string): Promise<boolean> {
    return (await this.query(this.sql.exists, [id])).rows.length > 0;
  }

  dueCallbacks(now: number, limit: number): Promise<TaskEntity[]> {
    return this.rows(this.sql.dueCallbacks, [now, limit]);
  }

  protected async updateCallback(
    id: string,
    held: { attempts: number; nextAt: number | null },
    set: CallbackChange,
  ): Promise<boolean> {
    const where = [id, held.attempts, held.nextAt];
    const result =
      'attempts' in set
        ? await this.query(this.sql.claimCallback, [...where, set.attempts, set.nextAt])
        : await this.query(this.sql.settleCallback, [...where, set.status, set.error, set.nextAt]);
    return result.rowCount === 1;
  }

  async deleteExpired(cutoff: number, limit: number): Promise<number> {
    return (await this.query(this.sql.deleteExpired, [cutoff, limit])).rowCount ?? 0;
  }

  /** Rows hydrated as TypeORM hydrates them (the epoch-ms transformer turns BIGINT into numbers). */
  private async rows(
    statement: { name: string; text: string },
    values: unknown[],
  ): Promise<TaskEntity[]> {
    const result = await this.query(statement, values);
    return (result.rows as Record<string, unknown>[]).map((row) => {
      const task = new TaskEntity();
      for (const col of this.columns) {
        (task as unknown as Record<string, unknown>)[col.propertyName] =
          this.driver.prepareHydratedValue(row[col.databaseName], col);
      }
      return task;
    });
  }

  /**
   * One UPDATE for the whole batch; each write's outcome is whether its id came back. Every
   * write in a batch names a different row (GroupCommit's key), so the answer is exact.
   */
  private async update<W extends { id: string }, R = boolean>(
    statement: { name: string; text: string; fields: (keyof W & string)[] },
    batch: W[],
    /** Each write's answer from its returned row (undefined: its row did not change). */
    answer: (row: Record<string, unknown> | undefined) => R = (row) => (row !== undefined) as R,
  ): Promise<Outcome<R>[]> {
    try {
      const arrays = statement.fields.map((field) => batch.map((write) => write[field]));
      const result = await this.query(statement, arrays);
      const changed = new Map(
        (result.rows as Record<string, unknown>[]).map((row) => [row.id as string, row]),
      );
      return batch.map((write) => ({ ok: true, value: answer(changed.get(write.id)) }));
    } catch (error) {
      if (batch.length === 1 || !rowSpecific(error)) throw error;
    }
    // Nothing changed; one write's value was refused: each alone, so only its caller hears.
    const outcomes: Outcome<R>[] = [];
    for (const write of batch) {
      try {
        const [outcome] = await this.update(statement, [write], answer);
        outcomes.push(outcome);
      } catch (error) {
        outcomes.push({ ok: false, error });
      }
    }
    return outcomes;
  }

  /**
   * Every caller's rows in one INSERT. If a row broke it (say a duplicate key), nothing went in,
   * and each caller's rows are tried again alone, so that row's caller gets the error and the
   * others their own outcome.
   */
  private async insertBatch(batch: TaskEntity[][]): Promise<Outcome<void>[]> {
    try {
      await this.insertRows(batch.length === 1 ? batch[0] : batch.flat());
      return batch.map(() => ({ ok: true, value: undefined }));
    } catch (error) {
      if (batch.length === 1 || !rowSpecific(error)) throw error;
    }
    const outcomes: Outcome<void>[] = [];
    for (const rows of batch) {
      try {
        await this.insertRows(rows);
        outcomes.push({ ok: true, value: undefined });
      } catch (error) {
        outcomes.push({ ok: false, error });
      }
    }
    return outcomes;
  }

  private async insertRows(tasks: TaskEntity[]): Promise<void> {
    const { statement, values } = this.insertStatement(tasks, false);
    await this.query(statement, values);
  }

  /**
   * The INSERT of `tasks`, column-major: one array per column. An absent property gets the
   * column's default, as TypeORM's INSERT (DEFAULT) would. A column that holds its default in
   * every row is left out, for the database to fill in: a new task has a dozen empty columns
   * (result, error, claim, lease, callback state), and each array sent costs its serialising
   * here and its parsing there, about a third of a bulk insert's time. Each set of columns is
   * a prepared statement of its own (a few in practice).
   */
  private insertStatement(
    tasks: TaskEntity[],
    skipTaken: boolean,
  ): { statement: { name: string; text: string }; values: unknown[][] } {
    const sent: ColumnMetadata[] = [];
    const values: unknown[][] = [];
    let key = skipTaken ? 'new:' : 'all:';
    for (const { col, fallback, omissible, prepare } of this.inserted) {
      const column = tasks.map((task): unknown => {
        const value = (task as unknown as Record<string, unknown>)[col.propertyName];
        return value === undefined ? fallback : prepare(value);
      });
      if (omissible && column.every((value) => value === fallback)) {
        key += '0';
        continue;
      }
      key += '1';
      sent.push(col);
      values.push(column);
    }
    let statement = this.insertStatements.get(key);
    if (!statement) {
      statement = this.sql.insert(sent, skipTaken);
      this.insertStatements.set(key, statement);
    }
    return { statement, values };
  }

  /** Runs a prepared statement on a pool connection; pg errors come back as QueryFailedError. */
  private async query(
    statement: { name: string; text: string },
    values: unknown[],
  ): Promise<QueryResult> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.pool.query({ name: statement.name, text: statement.text, values });
      } catch (error) {
        const code = (error as { code?: unknown } | null)?.code;
        if (code === DEADLOCK_DETECTED && attempt < DEADLOCK_RETRIES) continue;
        // As TypeORM wraps every failed query, but without the parameters: they hold other
        // callers' rows too.
        throw new QueryFailedError(statement.text, undefined, error as Error);
      }
    }
  }
}

/**
 * Whether PostgreSQL refused a value rather than the statement: a data exception (class 22, e.g.
 * a value too long) or an integrity violation (class 23, e.g. a duplicate key). Such a statement
 * is worth re-running write by write; a lost connection or a cancelled one is not.
 */
function rowSpecific(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('22') || code.startsWith('23'));
}

/** `(at, id)` strictly after (`>`) or before (`<`) the position in parameters `atParam`, `idParam`. */
function keyset(at: string, id: string, op: '<' | '>', atParam: string, idParam: string): string {
  return `(${at} ${op} ${atParam} OR (${at} = ${atParam} AND ${id} ${op} ${idParam}))`;
}

import { createHash } from 'node:crypto';
import type { Pool, QueryResult } from 'pg';
import { QueryFailedError, type DataSource, type Driver, type EntityMetadata } from 'typeorm';
import type { ColumnMetadata } from 'typeorm/metadata/ColumnMetadata';
import { TaskStatus } from './task-status.enum';
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
/** A batch PostgreSQL aborted as a deadlock victim changed nothing, so it is simply sent again. */
const DEADLOCK_RETRIES = 5;
const DEADLOCK_DETECTED = '40P01';

type Outcome<R> = { ok: true; value: R } | { ok: false; error: unknown };

interface Pending<I, R> {
  item: I;
  resolve: (value: R) => void;
  reject: (error: unknown) => void;
}

/**
 * The pg Pool of a TypeORM DataSource, or undefined for any other driver. TypeORM's
 * PostgresDriver keeps its pool in `master` (no replication configured).
 */
export function pgPool(dataSource: DataSource): Pool | undefined {
  if (dataSource.options.type !== 'postgres') return undefined;
  const pool = (dataSource.driver as unknown as { master?: Pool }).master;
  return pool && typeof pool.query === 'function' ? pool : undefined;
}

/**
 * Collects writes of one kind submitted in one event-loop turn (or while the previous statements
 * of that kind are in flight) and hands them to `run` together. `key` names the row a write
 * changes: a write waits while an earlier one to its row is waiting or running, so a statement
 * sees each row at most once (its RETURNING answers every caller exactly) and writes to one row
 * apply in the order they were submitted, as they would one statement at a time.
 */
class GroupCommit<I, R> {
  private pending: Pending<I, R>[] = [];
  private inFlight = 0;
  /** Keys of the writes in statements still running. */
  private readonly busy = new Set<string>();
  private scheduled = false;

  constructor(
    private readonly run: (items: I[]) => Promise<Outcome<R>[]>,
    private readonly limit: { size: (item: I) => number; max: number },
    private readonly key?: (item: I) => string,
  ) {}

  submit(item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= MAX_IN_FLIGHT) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    while (this.pending.length > 0 && this.inFlight < MAX_IN_FLIGHT) {
      const batch = this.take();
      // Every waiting write's row is in a running statement: the next settle starts them.
      if (batch.length === 0) return;
      this.inFlight += 1;
      void this.run(batch.map((write) => write.item)).then(
        (outcomes) => this.settle(batch, outcomes),
        (error: unknown) => this.settle(batch, undefined, error),
      );
    }
  }

  /**
   * The next statement's writes: in submission order, within the size bound, and none whose
   * key is taken by an earlier write still waiting or running.
   */
  private take(): Pending<I, R>[] {
    const batch: Pending<I, R>[] = [];
    const left: Pending<I, R>[] = [];
    const waiting = new Set<string>();
    let size = 0;
    for (const write of this.pending) {
      const key = this.key?.(write.item);
      const grows = this.limit.size(write.item);
      const fits = batch.length === 0 || size + grows <= this.limit.max;
      if (key !== undefined && (this.busy.has(key) || waiting.has(key))) {
        left.push(write);
        continue;
      }
      if (key !== undefined) waiting.add(key);
      if (!fits) {
        left.push(write);
        continue;
      }
      if (key !== undefined) this.busy.add(key);
      size += grows;
      batch.push(write);
    }
    this.pending = left;
    return batch;
  }

  private settle(batch: Pending<I, R>[], outcomes?: Outcome<R>[], error?: unknown): void {
    this.inFlight -= 1;
    if (this.key) for (const write of batch) this.busy.delete(this.key(write.item));
    for (let i = 0; i < batch.length; i++) {
      const outcome = outcomes?.[i];
      if (outcome?.ok) batch[i].resolve(outcome.value);
      else batch[i].reject(outcome ? outcome.error : error);
    }
    if (this.pending.length > 0) this.schedule();
  }
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
}
interface Progress {
  id: string;
  token: string;
  percent: number;
  message: string | null;
  now: number;
}

/**
 * The task table's hot statements on PostgreSQL, run on the pg Pool TypeORM opened, as named
 * (prepared) statements whose parameters are arrays: `UPDATE … FROM unnest($1, $2, …)` and
 * `INSERT … SELECT * FROM unnest(…)` change any number of rows with one fixed SQL text, so each
 * connection parses and plans it once. The conditions mirror TaskStore's QueryBuilder path clause
 * for clause, so both change the same rows under the same conditions.
 *
 * Writes are group-committed: all claims (or completes, fails, progress updates, inserts)
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
export class PgTaskStatements {
  private readonly columns: ColumnMetadata[];
  private readonly sql: ReturnType<PgTaskStatements['statements']>;
  private readonly claims: GroupCommit<Claim, boolean>;
  private readonly completes: GroupCommit<Complete, boolean>;
  private readonly fails: GroupCommit<Fail, boolean>;
  private readonly progresses: GroupCommit<Progress, boolean>;
  private readonly inserts: GroupCommit<TaskEntity[], void>;

  constructor(
    private readonly pool: Pool,
    private readonly driver: Driver,
    metadata: EntityMetadata,
  ) {
    this.columns = metadata.columns;
    this.sql = this.statements(metadata);
    const one = { size: () => 1, max: MAX_UPDATES };
    const byId = (write: { id: string }): string => write.id;
    this.claims = new GroupCommit<Claim, boolean>(
      (batch) => this.update(this.sql.claim, batch),
      one,
      byId,
    );
    this.completes = new GroupCommit<Complete, boolean>(
      (batch) => this.update(this.sql.complete, batch),
      one,
      byId,
    );
    this.fails = new GroupCommit<Fail, boolean>(
      (batch) => this.update(this.sql.fail, batch),
      one,
      byId,
    );
    this.progresses = new GroupCommit<Progress, boolean>(
      (batch) => this.update(this.sql.progress, batch),
      one,
      byId,
    );
    this.inserts = new GroupCommit((batch) => this.insertBatch(batch), {
      size: (rows) => rows.length,
      max: MAX_INSERT_ROWS,
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
    // Same WHERE as TaskStore.updateClaimed, per row of v.
    const claimed = `WHERE t.${c('id')} = v.id AND t.${c('claimToken')} = v.token AND ${isRunning}`;
    // Same CASE as callbackPending(): a terminal task with a callback URL queues its callback.
    const callbackStatus = `CASE WHEN t.${c('callbackUrl')} IS NULL THEN NULL ELSE 'pending' END`;
    const callbackNextAt = `CASE WHEN t.${c('callbackUrl')} IS NULL THEN NULL ELSE v.now END`;
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
    ];
    const progressFields: Fields<Progress> = [
      ['id', 'id'],
      ['token', 'claimToken'],
      ['percent', 'progress'],
      ['message', 'progressMessage'],
      ['now', 'updatedAt'],
    ];
    return {
      insert: named(
        'insert',
        `INSERT INTO ${T} (${names}) SELECT * FROM unnest(` +
          `${this.columns.map((col, i) => `$${i + 1}::${typeOf(col)}[]`).join(', ')})`,
      ),
      findById: named('find', `SELECT ${names} FROM ${T} WHERE ${c('id')} = $1 LIMIT 1`),
      // Same conditions as TaskStore.claim: a queued row of an earlier attempt, or, for a
      // redelivered message, a running row of this same attempt.
      claim: updating(
        'claim',
        claimFields,
        `UPDATE ${T} AS t SET ${c('status')} = ${status(TaskStatus.Running)},
           ${c('attempt')} = v.attempt, ${c('claimToken')} = v.token,
           ${c('startedAt')} = v.now, ${c('updatedAt')} = v.now
         FROM ${unnest(claimFields)}
         WHERE t.${c('id')} = v.id AND CASE t.${c('status')}
           WHEN ${status(TaskStatus.Queued)} THEN t.${c('attempt')} < v.attempt
           WHEN ${status(TaskStatus.Running)} THEN v.redelivered AND t.${c('attempt')} = v.attempt
           ELSE false END
         ${returning}`,
      ),
      complete: updating(
        'complete',
        completeFields,
        `UPDATE ${T} AS t SET ${c('status')} = ${status(TaskStatus.Completed)},
           ${c('result')} = v.result, ${c('error')} = NULL, ${c('processedAt')} = v.now,
           ${c('updatedAt')} = v.now, ${c('claimToken')} = NULL,
           ${c('callbackStatus')} = ${callbackStatus}, ${c('callbackNextAt')} = ${callbackNextAt}
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
           ${c('callbackStatus')} = CASE WHEN v.final THEN ${callbackStatus}
             ELSE t.${c('callbackStatus')} END,
           ${c('callbackNextAt')} = CASE WHEN v.final THEN ${callbackNextAt}
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
    };
  }

  /** All rows in one statement: all or none. */
  insert(tasks: TaskEntity[]): Promise<void> {
    return this.inserts.submit(tasks);
  }

  async findById(id: string): Promise<TaskEntity | null> {
    const result = await this.query(this.sql.findById, [id]);
    const row = result.rows[0] as Record<string, unknown> | undefined;
    if (!row) return null;
    // Hydrated as TypeORM hydrates (the epoch-ms transformer turns BIGINT strings into numbers).
    const task = new TaskEntity();
    for (const col of this.columns) {
      (task as unknown as Record<string, unknown>)[col.propertyName] =
        this.driver.prepareHydratedValue(row[col.databaseName], col);
    }
    return task;
  }

  claim(id: string, attempt: number, token: string, redelivered: boolean): Promise<boolean> {
    return this.claims.submit({ id, attempt, token, redelivered, now: Date.now() });
  }

  complete(id: string, token: string, result: string, now: number): Promise<boolean> {
    return this.completes.submit({ id, token, result, now: Math.trunc(now) });
  }

  fail(id: string, token: string, error: string, final: boolean, now: number): Promise<boolean> {
    return this.fails.submit({ id, token, error, final, now: Math.trunc(now) });
  }

  progress(id: string, token: string, percent: number, message: string | null): Promise<boolean> {
    return this.progresses.submit({ id, token, percent, message, now: Date.now() });
  }

  /**
   * One UPDATE for the whole batch; each write's outcome is whether its id came back. Every
   * write in a batch names a different row (GroupCommit's key), so the answer is exact.
   */
  private async update<W extends { id: string }>(
    statement: { name: string; text: string; fields: (keyof W & string)[] },
    batch: W[],
  ): Promise<Outcome<boolean>[]> {
    try {
      const arrays = statement.fields.map((field) => batch.map((write) => write[field]));
      const result = await this.query(statement, arrays);
      const changed = new Set((result.rows as { id: string }[]).map((row) => row.id));
      return batch.map((write) => ({ ok: true, value: changed.has(write.id) }));
    } catch (error) {
      if (batch.length === 1 || !rowSpecific(error)) throw error;
    }
    // Nothing changed; one write's value was refused: each alone, so only its caller hears.
    const outcomes: Outcome<boolean>[] = [];
    for (const write of batch) {
      try {
        const [outcome] = await this.update(statement, [write]);
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
    // Column-major: one array per column. An absent property gets the column's default, as
    // TypeORM's INSERT (DEFAULT) would.
    const arrays = this.columns.map((col): unknown[] => {
      const fallback: unknown = typeof col.default === 'function' ? null : (col.default ?? null);
      return tasks.map((task): unknown => {
        const value = (task as unknown as Record<string, unknown>)[col.propertyName];
        return value === undefined ? fallback : this.driver.preparePersistentValue(value, col);
      });
    });
    await this.query(this.sql.insert, arrays);
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

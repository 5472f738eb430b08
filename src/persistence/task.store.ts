import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Brackets, In, Repository, type UpdateQueryBuilder } from 'typeorm';
import { QueueDriverRegistry, type SharedWrite } from '../queue';
import { PgTaskStatements, pgPool } from './pg-task-statements';
import { betterSqliteHandle, SqliteTaskStatements } from './sqlite-task-statements';
import { TaskStatus } from './task-status.enum';
import { TaskEntity } from './task.entity';

export interface ListTasksFilter {
  status?: TaskStatus;
  action?: string;
  createdAfter?: number;
  createdBefore?: number;
  /** Keyset position: tasks strictly older than this one (createdAt, then id). */
  before?: { createdAt: number; id: string };
  limit: number;
}

/** Rows per INSERT: 26 columns each stays far below SQLite's 32,766 bound parameters. */
const INSERT_CHUNK = 500;

/**
 * In the update that makes a task terminal: a task with a callback URL gets its callback
 * queued in the same statement, so the callback can never be forgotten.
 */
function callbackPending(now: number): TaskChanges {
  return {
    callbackStatus: () => "CASE WHEN callback_url IS NULL THEN NULL ELSE 'pending' END",
    // `now` is a number from Date.now(), never input: safe to inline.
    callbackNextAt: () => `CASE WHEN callback_url IS NULL THEN NULL ELSE ${Math.trunc(now)} END`,
  };
}

type TaskChanges = Parameters<UpdateQueryBuilder<TaskEntity>['set']>[0];

/**
 * Every read and write of the task table. Each state change is a conditional update, so a
 * duplicate or stale delivery changes nothing: the outcome of an attempt is recorded once.
 *
 * On SQLite (better-sqlite3) the hot operations (insert, findById, claim, complete, fail,
 * progress) bypass the QueryBuilder, whose parameter handling cost as much CPU as SQLite itself:
 * they run cached prepared statements with the same SQL semantics and group-commit their writes
 * (see SqliteTaskStatements). On PostgreSQL the same operations run as prepared statements on
 * TypeORM's pg pool, the writes of one event-loop turn batched into one statement per kind (see
 * PgTaskStatements). Everything else goes through TypeORM.
 */
@Injectable()
export class TaskStore {
  private fast?: SqliteTaskStatements | null;
  private fastPg?: PgTaskStatements | null;

  constructor(
    @InjectRepository(TaskEntity) private readonly repo: Repository<TaskEntity>,
    private readonly drivers: QueueDriverRegistry,
  ) {}

  /**
   * The prepared-statement path, or null when the database is not better-sqlite3. It runs on
   * the sqlite queue driver's connection when that driver keeps its messages in this file.
   */
  private get sqlite(): SqliteTaskStatements | null {
    if (this.fast === undefined) {
      const db = betterSqliteHandle(this.repo.manager.connection);
      const shared = db && db.name !== ':memory:' ? this.drivers.sharedWriter(db.name) : undefined;
      this.fast = db
        ? new SqliteTaskStatements(shared?.db ?? db, this.repo.metadata, shared)
        : null;
    }
    return this.fast;
  }

  /** The batched prepared-statement path, or null when the database is not PostgreSQL. */
  private get pg(): PgTaskStatements | null {
    if (this.fastPg === undefined) {
      const connection = this.repo.manager.connection;
      const pool = pgPool(connection);
      this.fastPg = pool ? new PgTaskStatements(pool, connection.driver, this.repo.metadata) : null;
    }
    return this.fastPg;
  }

  /** Inserts all rows in one transaction: all or none. */
  async insert(tasks: TaskEntity[]): Promise<void> {
    if (tasks.length === 0) return;
    const sqlite = this.sqlite;
    if (sqlite) return sqlite.insert(tasks);
    const pg = this.pg;
    if (pg) return pg.insert(tasks);
    if (tasks.length === 1) {
      await this.repo.createQueryBuilder().insert().values(tasks).updateEntity(false).execute();
      return;
    }
    await this.repo.manager.transaction(async (manager) => {
      for (let i = 0; i < tasks.length; i += INSERT_CHUNK) {
        await manager
          .createQueryBuilder()
          .insert()
          .into(TaskEntity)
          .values(tasks.slice(i, i + INSERT_CHUNK))
          .updateEntity(false)
          .execute();
      }
    });
  }

  /**
   * The rows as a write for a queue driver to commit with their messages (see
   * QueuePublisher.publishWith): `run` where the driver shares this SQLite file, else `commit`.
   */
  insertion(tasks: TaskEntity[]): SharedWrite {
    const insert = this.sqlite?.insertNow(tasks);
    return this.sharedWrite(
      insert &&
        (() => {
          insert();
          return true;
        }),
      () => this.insert(tasks).then(() => true),
      () => undefined,
    );
  }

  async findById(id: string): Promise<TaskEntity | null> {
    const sqlite = this.sqlite;
    if (sqlite) return sqlite.findById(id);
    const pg = this.pg;
    if (pg) return pg.findById(id);
    return this.repo.findOneBy({ id });
  }

  findByIdempotencyKey(key: string): Promise<TaskEntity | null> {
    return this.repo.findOneBy({ idempotencyKey: key });
  }

  /** Newest first, ties broken by id, so keyset pages stay stable while tasks are added. */
  list(filter: ListTasksFilter): Promise<TaskEntity[]> {
    const query = this.repo
      .createQueryBuilder('task')
      .orderBy('task.created_at', 'DESC')
      .addOrderBy('task.id', 'DESC')
      .limit(filter.limit);
    if (filter.status) query.andWhere('task.status = :status', { status: filter.status });
    if (filter.action) query.andWhere('task.action = :action', { action: filter.action });
    if (filter.createdAfter !== undefined) {
      query.andWhere('task.created_at > :after', { after: filter.createdAfter });
    }
    if (filter.createdBefore !== undefined) {
      query.andWhere('task.created_at < :beforeTime', { beforeTime: filter.createdBefore });
    }
    if (filter.before) {
      query.andWhere(
        '(task.created_at < :cursorAt OR (task.created_at = :cursorAt AND task.id < :cursorId))',
        { cursorAt: filter.before.createdAt, cursorId: filter.before.id },
      );
    }
    return query.getMany();
  }

  /**
   * Claims the row for `attempt` under a new fencing `token`: a queued row from an earlier
   * attempt, or, when the broker redelivered the message (its holder died), a running row of
   * this same attempt. False means the delivery is a duplicate or stale.
   */
  async claim(id: string, attempt: number, token: string, redelivered: boolean): Promise<boolean> {
    const sqlite = this.sqlite;
    if (sqlite) return sqlite.claim(id, attempt, token, redelivered);
    const pg = this.pg;
    if (pg) return pg.claim(id, attempt, token, redelivered);
    const now = Date.now();
    const result = await this.repo
      .createQueryBuilder()
      .update(TaskEntity)
      .set({
        status: TaskStatus.Running,
        attempt,
        claimToken: token,
        startedAt: now,
        updatedAt: now,
      })
      .where('id = :id', { id })
      .andWhere(
        new Brackets((where) => {
          where.where('(status = :queued AND attempt < :attempt)', {
            queued: TaskStatus.Queued,
            attempt,
          });
          if (redelivered) {
            where.orWhere('(status = :running AND attempt = :attempt)', {
              running: TaskStatus.Running,
            });
          }
        }),
      )
      .execute();
    return result.affected === 1;
  }

  /** Records success; false if the claim was lost (taken over or cancelled). */
  complete(id: string, token: string, result: unknown): Promise<boolean> {
    return this.completeJson(id, token, JSON.stringify(result ?? null));
  }

  private completeJson(id: string, token: string, result: string): Promise<boolean> {
    const now = Date.now();
    const sqlite = this.sqlite;
    if (sqlite) return sqlite.complete(id, token, result, now);
    const pg = this.pg;
    if (pg) return pg.complete(id, token, result, now);
    return this.updateClaimed(id, token, {
      status: TaskStatus.Completed,
      result,
      error: null,
      processedAt: now,
      updatedAt: now,
      claimToken: null,
      ...callbackPending(now),
    });
  }

  /**
   * Success as a write for the worker pool to commit with the ack (see SharedWrite): in the
   * ack's own transaction when the queue driver shares this SQLite file, else just before it.
   * `committed` hears whether the claim still held.
   */
  completion(
    id: string,
    token: string,
    result: unknown,
    committed: (applied: boolean) => void,
  ): SharedWrite {
    const json = JSON.stringify(result ?? null);
    return this.sharedWrite(
      this.sqlite?.completeNow(id, token, json, Date.now()),
      () => this.completeJson(id, token, json),
      committed,
    );
  }

  /** A failed attempt as a write for the worker pool to commit with the nack or dead-letter. */
  failure(
    id: string,
    token: string,
    error: string,
    final: boolean,
    committed: (applied: boolean) => void,
  ): SharedWrite {
    return this.sharedWrite(
      this.sqlite?.failNow(id, token, error, final, Date.now()),
      () => this.fail(id, token, error, final),
      committed,
    );
  }

  /** `run` on the shared connection when there is one, `commit` on its own otherwise. */
  private sharedWrite(
    run: (() => boolean) | undefined,
    commit: () => Promise<boolean>,
    committed: (applied: boolean) => void,
  ): SharedWrite {
    return {
      writer: this.sqlite?.writer,
      run: () => {
        if (!run) throw new Error('no synchronous path to the task table');
        return run();
      },
      commit,
      committed,
    };
  }

  /** Records a failed attempt: back to queued for a retry, or failed for good. */
  fail(id: string, token: string, error: string, final: boolean): Promise<boolean> {
    const now = Date.now();
    const sqlite = this.sqlite;
    if (sqlite) return sqlite.fail(id, token, error, final, now);
    const pg = this.pg;
    if (pg) return pg.fail(id, token, error, final, now);
    return this.updateClaimed(id, token, {
      status: final ? TaskStatus.Failed : TaskStatus.Queued,
      error,
      processedAt: final ? now : null,
      updatedAt: now,
      claimToken: null,
      ...(final ? callbackPending(now) : {}),
    });
  }

  /** Stores progress while the claim holds. */
  progress(id: string, token: string, percent: number, message: string | null): Promise<boolean> {
    const sqlite = this.sqlite;
    if (sqlite) return sqlite.progress(id, token, percent, message);
    const pg = this.pg;
    if (pg) return pg.progress(id, token, percent, message);
    return this.updateClaimed(id, token, {
      progress: percent,
      progressMessage: message,
      updatedAt: Date.now(),
    });
  }

  /** Queued or running → cancelled. False when the task is in neither status (or absent). */
  async cancel(id: string): Promise<boolean> {
    const now = Date.now();
    const result = await this.repo
      .createQueryBuilder()
      .update(TaskEntity)
      .set({
        status: TaskStatus.Cancelled,
        processedAt: now,
        updatedAt: now,
        ...callbackPending(now),
      })
      .where('id = :id AND status IN (:...open)', {
        id,
        open: [TaskStatus.Queued, TaskStatus.Running],
      })
      .execute();
    return result.affected === 1;
  }

  /** Failed or cancelled → queued with fresh attempts (the dead-letter redrive). */
  async requeueFinished(id: string): Promise<boolean> {
    const result = await this.repo
      .createQueryBuilder()
      .update(TaskEntity)
      .set({
        status: TaskStatus.Queued,
        attempt: 0,
        result: null,
        error: null,
        progress: null,
        progressMessage: null,
        claimToken: null,
        startedAt: null,
        processedAt: null,
        runAt: null,
        updatedAt: Date.now(),
        callbackStatus: null,
        callbackAttempts: 0,
        callbackError: null,
        callbackNextAt: null,
      })
      .where('id = :id AND status IN (:...finished)', {
        id,
        finished: [TaskStatus.Failed, TaskStatus.Cancelled],
      })
      .execute();
    return result.affected === 1;
  }

  /** Which of `ids` have been cancelled (so their handlers can be stopped). */
  async cancelledAmong(ids: string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const rows = await this.repo.find({
      select: { id: true },
      where: { id: In(ids), status: TaskStatus.Cancelled },
    });
    return rows.map((row) => row.id);
  }

  countQueued(): Promise<number> {
    return this.repo.countBy({ status: TaskStatus.Queued });
  }

  private async updateClaimed(id: string, token: string, values: TaskChanges): Promise<boolean> {
    const result = await this.repo
      .createQueryBuilder()
      .update(TaskEntity)
      .set(values)
      .where('id = :id AND claim_token = :token AND status = :running', {
        id,
        token,
        running: TaskStatus.Running,
      })
      .execute();
    return result.affected === 1;
  }
}

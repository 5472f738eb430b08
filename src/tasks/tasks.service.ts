import { Injectable, Logger } from '@nestjs/common';
import { plainToInstance } from 'class-transformer';
import { validate, type ValidationError } from 'class-validator';
import { groupBy } from '../common/group-by';
import { stableHash } from '../common/stable-hash';
import { QueryFailedError } from 'typeorm';
import type { AppConfig } from '../config/app.config';
import { InjectAppConfig } from '../config/inject-app-config.decorator';
import { MAX_ATTEMPTS_HEADER, type PublishMessage, QueuePublisher } from '../queue';
import { checkCallbackUrl } from '../callbacks/callback-url';
import type { CreateTaskDto } from './dto/create-task.dto';
import { IdempotencyConflictError } from './errors/idempotency-conflict.error';
import { InvalidTaskRequestError } from './errors/invalid-task-request.error';
import { QueueFullError } from './errors/queue-full.error';
import { TaskNotFoundError } from './errors/task-not-found.error';
import { TaskStateConflictError } from './errors/task-state-conflict.error';
import { UnknownActionError } from './errors/unknown-action.error';
import { TaskMetrics } from '../observability/metrics';
import { TaskEvents } from './task-events.service';
import { TaskHandlerExplorer } from '../handlers/task-handler.explorer';
import { traceHeaders } from '../observability/tracing';
import { CREATED_AT_HEADER, DUE_AT_HEADER, type TaskMessage } from './task-message.interface';
import { TERMINAL_STATUSES } from '../persistence/task-status.enum';
import type { TaskEntity } from '../persistence/task.entity';
import { newTask } from './task.factory';
import { type ListTasksFilter, TaskStatements } from '../persistence/task-statements';

export interface CreateResult {
  task: TaskEntity;
  /** False when an Idempotency-Key matched an earlier request: `task` is that request's task. */
  created: boolean;
}

/** One request of a batch that `createKeyed` creates at once. */
export interface KeyedRequest {
  dto: CreateTaskDto;
  idempotencyKey: string;
}

/** How long a queue-depth reading is reused, so a burst of POSTs costs one COUNT. */
const DEPTH_CACHE_MS = 500;
/** Long polls re-read the row this often, to see changes made by other processes. */
const WAIT_POLL_MS = 250;

/** The task use cases behind the REST API. */
@Injectable()
export class TasksService {
  private readonly logger = new Logger(TasksService.name);
  private depth = { value: 0, at: 0 };

  constructor(
    private readonly store: TaskStatements,
    private readonly explorer: TaskHandlerExplorer,
    private readonly publisher: QueuePublisher,
    private readonly events: TaskEvents,
    @InjectAppConfig() private readonly config: AppConfig,
    private readonly metrics: TaskMetrics,
  ) {}

  /**
   * Validates, then stores the row (queued) and publishes its message (see insertAndPublish).
   * With an idempotency key, the unique index decides which of racing requests creates the task.
   */
  async create(dto: CreateTaskDto, idempotencyKey?: string): Promise<CreateResult> {
    const requestHash = idempotencyKey ? stableHash(dto) : null;
    if (idempotencyKey) {
      const existing = await this.store.findByIdempotencyKey(idempotencyKey);
      if (existing)
        return { task: this.replay(existing, idempotencyKey, requestHash!), created: false };
    }
    await this.assertRoom(1);
    const task = await this.build(dto, '');
    task.idempotencyKey = idempotencyKey ?? null;
    task.requestHash = requestHash;
    try {
      await this.insertAndPublish([task]);
    } catch (error) {
      if (!idempotencyKey || !isUniqueViolation(error)) throw error;
      // Another request with this key won the race: answer with its task.
      const winner = await this.store.findByIdempotencyKey(idempotencyKey);
      if (!winner) throw error;
      return { task: this.replay(winner, idempotencyKey, requestHash!), created: false };
    }
    return { task, created: true };
  }

  /**
   * `create` for many keyed requests at once (the scheduler's ticks), with one outcome per
   * request, in order: each is validated and built as `create` does, the rows whose key is free
   * go in one transaction and only they are published, and a taken key (by a stored task or an
   * earlier request of the batch) answers with its task, as `create` would. Rejects as a whole
   * only when the batch itself fails (the database).
   */
  async createKeyed(requests: KeyedRequest[]): Promise<PromiseSettledResult<CreateResult>[]> {
    const outcomes = new Array<PromiseSettledResult<CreateResult>>(requests.length);
    const built: { index: number; task: TaskEntity }[] = [];
    await Promise.all(
      requests.map(async ({ dto, idempotencyKey }, index) => {
        try {
          const task = await this.build(dto, '');
          task.idempotencyKey = idempotencyKey;
          task.requestHash = stableHash(dto);
          built.push({ index, task });
        } catch {
          // `create` looks the key up before it validates: a stored task still answers.
          outcomes[index] = await settle(this.create(dto, idempotencyKey));
        }
      }),
    );
    if (built.length === 0) return outcomes;
    built.sort((a, b) => a.index - b.index);
    try {
      await this.assertRoom(built.length);
    } catch (error) {
      if (!(error instanceof QueueFullError)) throw error;
      // No room for all: each request decides as `create` would (a taken key still answers).
      for (const { index } of built) {
        const { dto, idempotencyKey } = requests[index];
        outcomes[index] = await settle(this.create(dto, idempotencyKey));
      }
      return outcomes;
    }
    const inserted = await this.insertNewAndPublish(built.map(({ task }) => task));
    await Promise.all(
      built.map(async ({ index, task }) => {
        if (inserted.has(task.id)) {
          outcomes[index] = { status: 'fulfilled', value: { task, created: true } };
          return;
        }
        const key = task.idempotencyKey!;
        outcomes[index] = await settle(
          this.store.findByIdempotencyKey(key).then((existing) => {
            if (!existing)
              throw new Error(`idempotency key ${key} was taken, but its task is gone`);
            return { task: this.replay(existing, key, task.requestHash!), created: false };
          }),
        );
      }),
    );
    return outcomes;
  }

  /** All or nothing: every task is validated first, then all rows go in one transaction. */
  async createMany(dtos: CreateTaskDto[]): Promise<TaskEntity[]> {
    const tasks: TaskEntity[] = [];
    const problems: string[] = [];
    for (const [index, dto] of dtos.entries()) {
      try {
        tasks.push(await this.build(dto, `tasks.${index}.`));
      } catch (error) {
        if (error instanceof InvalidTaskRequestError) problems.push(...error.messages);
        else if (error instanceof UnknownActionError)
          problems.push(`tasks.${index}.action: ${error.message}`);
        else throw error;
      }
    }
    if (problems.length > 0) throw new InvalidTaskRequestError(problems);
    await this.assertRoom(tasks.length);
    await this.insertAndPublish(tasks);
    return tasks;
  }

  /** Publishes each task's next attempt to its queue, with `headersFor`'s extra headers. */
  async publish(
    tasks: TaskEntity[],
    headersFor?: (task: TaskEntity) => Record<string, string>,
  ): Promise<void> {
    for (const [queue, group] of groupBy(tasks, (task) => task.queue)) {
      await this.publisher.publish<TaskMessage>(queue, messagesFor(group, headersFor));
    }
  }

  async findOne(id: string): Promise<TaskEntity> {
    const task = await this.store.findById(id);
    if (!task) throw new TaskNotFoundError(id);
    return task;
  }

  /**
   * The task once it is terminal, or as it is when `waitMs` runs out. Woken by this process's
   * events at once; re-reads the row every 250 ms for changes made by other processes.
   */
  async waitFor(id: string, waitMs: number): Promise<TaskEntity> {
    const deadline = Date.now() + waitMs;
    let task = await this.findOne(id);
    while (!TERMINAL_STATUSES.includes(task.status) && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(WAIT_POLL_MS, deadline - Date.now()));
        const unsubscribe = this.events.subscribe((event) => {
          if (event.taskId === id && TERMINAL_STATUSES.includes(event.status)) done();
        });
        function done(): void {
          clearTimeout(timer);
          unsubscribe();
          resolve();
        }
      });
      task = await this.findOne(id);
    }
    return task;
  }

  list(filter: ListTasksFilter): Promise<TaskEntity[]> {
    return this.store.list(filter);
  }

  /**
   * Queued: it will never run (its message finds nothing to claim). Running: its signal
   * aborts, here or in whichever worker process holds it. Terminal: a conflict.
   */
  async cancel(id: string): Promise<TaskEntity> {
    if (!(await this.store.cancel(id))) {
      const task = await this.findOne(id);
      throw new TaskStateConflictError(id, task.status, 'cancelled');
    }
    const task = await this.findOne(id);
    this.metrics.cancelled.inc({ queue: task.queue, action: task.action });
    this.events.emit({
      type: 'status',
      taskId: id,
      action: task.action,
      status: task.status,
      at: Date.now(),
    });
    return task;
  }

  /** Failed or cancelled: queued again with fresh attempts (the dead-letter redrive). */
  async retry(id: string): Promise<TaskEntity> {
    if (!(await this.store.requeueFinished(id))) {
      const task = await this.findOne(id);
      throw new TaskStateConflictError(
        id,
        task.status,
        'retried (only failed or cancelled tasks can)',
      );
    }
    const task = await this.findOne(id);
    await this.publishAccepted([task]);
    return task;
  }

  /** `field` prefixes the names in error messages: '' for one task, `tasks.N.` in a batch. */
  private async build(dto: CreateTaskDto, field: string): Promise<TaskEntity> {
    const data = dto.data ?? {};
    const handler = this.explorer.resolve(dto.action);
    if (!handler) throw new UnknownActionError(dto.action, this.explorer.actions());
    if (dto.delayMs !== undefined && dto.runAt !== undefined) {
      throw new InvalidTaskRequestError([`${field}delayMs and runAt cannot both be set`]);
    }
    if (dto.callbackUrl !== undefined) {
      const refused = checkCallbackUrl(dto.callbackUrl, this.config.callback.allowPrivate);
      if (refused) throw new InvalidTaskRequestError([`${field}${refused}`]);
    }
    if (handler.dataType) {
      const errors = await validate(plainToInstance(handler.dataType, data), {
        forbidUnknownValues: false,
      });
      if (errors.length > 0) throw new InvalidTaskRequestError(flatten(errors, `${field}data`));
    }
    const now = Date.now();
    const runAt =
      dto.runAt !== undefined ? Date.parse(dto.runAt) : dto.delayMs ? now + dto.delayMs : null;
    const timeoutMs = dto.timeoutMs ?? handler.timeoutMs ?? (this.config.task.timeoutMs || null);
    return newTask({
      action: dto.action,
      data,
      queue: handler.queue ?? this.config.queue.name,
      maxAttempts: dto.maxAttempts ?? handler.maxAttempts ?? this.config.task.maxAttempts,
      priority: dto.priority,
      runAt: runAt !== null && runAt > now ? runAt : null,
      timeoutMs,
      callbackUrl: dto.callbackUrl,
      now,
    });
  }

  /**
   * New rows and their messages. Where the queue's driver shares the task database (sqlite
   * with its default file), both commit in one transaction: no moment exists with a row and no
   * message. Elsewhere the row is committed first, then published; a crash or a broker error
   * in between leaves a queued row that recovery publishes again.
   */
  private async insertAndPublish(tasks: TaskEntity[]): Promise<void> {
    const queue = tasks[0].queue;
    if (tasks.every((task) => task.queue === queue)) {
      const write = this.store.insertion(tasks);
      if (await this.publisher.publishWith(queue, messagesFor(tasks), write)) {
        this.countAccepted(tasks);
        return this.emitQueued(tasks);
      }
    }
    await this.store.insert(tasks);
    this.countAccepted(tasks);
    await this.publishAccepted(tasks);
  }

  /**
   * The rows whose key is free, and only their messages; answers the ids that went in. Where the
   * driver shares the task database, all rows and messages first try one transaction, as in
   * insertAndPublish: a taken key fails it (the unique index), which undoes it whole, and then
   * (rarely: a tick another process also ran) the free rows are committed and published after.
   */
  private async insertNewAndPublish(tasks: TaskEntity[]): Promise<Set<string>> {
    const queue = tasks[0].queue;
    if (tasks.every((task) => task.queue === queue)) {
      try {
        const write = this.store.insertion(tasks);
        if (await this.publisher.publishWith(queue, messagesFor(tasks), write)) {
          this.countAccepted(tasks);
          this.emitQueued(tasks);
          return new Set(tasks.map((task) => task.id));
        }
      } catch (error) {
        if (!isUniqueViolation(error)) throw error;
      }
    }
    const inserted = new Set(await this.store.insertNew(tasks));
    const accepted = tasks.filter((task) => inserted.has(task.id));
    this.countAccepted(accepted);
    await this.publishAccepted(accepted);
    return inserted;
  }

  private countAccepted(tasks: TaskEntity[]): void {
    for (const task of tasks) this.metrics.accepted.inc({ queue: task.queue, action: task.action });
  }

  private emitQueued(tasks: TaskEntity[]): void {
    for (const task of tasks) {
      this.events.emit({
        type: 'status',
        taskId: task.id,
        action: task.action,
        status: task.status,
        at: Date.now(),
      });
    }
  }

  private async publishAccepted(tasks: TaskEntity[]): Promise<void> {
    this.emitQueued(tasks);
    try {
      await this.publish(tasks);
    } catch (error) {
      this.logger.error(
        `${tasks.length} task(s) stored but not published; recovery will publish them`,
        (error as Error).stack,
      );
    }
  }

  private replay(existing: TaskEntity, key: string, requestHash: string): TaskEntity {
    if (existing.requestHash !== requestHash) throw new IdempotencyConflictError(key);
    return existing;
  }

  private async assertRoom(adding: number): Promise<void> {
    const limit = this.config.task.maxQueueDepth;
    if (limit === 0) return;
    if (Date.now() - this.depth.at > DEPTH_CACHE_MS) {
      this.depth = { value: await this.store.countQueued(), at: Date.now() };
    }
    if (this.depth.value + adding > limit) throw new QueueFullError(this.depth.value, limit);
    this.depth.value += adding;
  }
}

function settle<T>(promise: Promise<T>): Promise<PromiseSettledResult<T>> {
  return promise.then(
    (value) => ({ status: 'fulfilled', value }),
    (reason: unknown) => ({ status: 'rejected', reason }),
  );
}

/** Each task's next attempt as a message, with `headersFor`'s extra headers. */
function messagesFor(
  tasks: TaskEntity[],
  headersFor?: (task: TaskEntity) => Record<string, string>,
): PublishMessage<TaskMessage>[] {
  const now = Date.now();
  // The active trace (the POST /tasks span, when tracing is on) rides in every message, so the
  // worker's handler span joins it whichever process and driver carry the message.
  const trace = traceHeaders();
  return tasks.map((task) => ({
    body: {
      taskId: task.id,
      action: task.action,
      data: JSON.parse(task.payload) as Record<string, unknown>,
      ...(task.timeoutMs ? { timeoutMs: task.timeoutMs } : {}),
    },
    priority: task.priority,
    delayMs: task.runAt ? Math.max(0, task.runAt - now) : 0,
    attempt: task.attempt + 1,
    headers: {
      [MAX_ATTEMPTS_HEADER]: String(task.maxAttempts),
      [CREATED_AT_HEADER]: String(task.createdAt),
      [DUE_AT_HEADER]: String(task.runAt ?? task.createdAt),
      ...trace,
      ...headersFor?.(task),
    },
    // A task has at most one live message: publishing it again while one waits, is delayed
    // for a retry or is in flight changes nothing (see TaskReconciler).
    deduplicationKey: task.id,
  }));
}

function isUniqueViolation(error: unknown): boolean {
  if (!(error instanceof QueryFailedError)) return false;
  const { code } = error.driverError as { code?: string };
  // SQLite (better-sqlite3) and PostgreSQL.
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === '23505';
}

/** class-validator errors as "data.field must be ..." lines, nested fields included. */
function flatten(errors: ValidationError[], prefix: string): string[] {
  return errors.flatMap((error) => {
    const path = `${prefix}.${error.property}`;
    const own = Object.values(error.constraints ?? {}).map((text) =>
      text.startsWith(error.property) ? `${prefix}.${text}` : `${path}: ${text}`,
    );
    return [...own, ...flatten(error.children ?? [], path)];
  });
}

import { Injectable, Logger } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { groupBy } from '../common/group-by';
import { cpuMs } from '../common/paced-read';
import { stableHash } from '../common/stable-hash';
import { within } from '../common/within';
import { QueryFailedError } from 'typeorm';
import type { AppConfig } from '../config/app.config';
import { InjectAppConfig } from '../config/inject-app-config.decorator';
import { DEFAULT_TENANT, type TaskActor } from '../auth/actor';
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
import { handlerDataProblems } from '../handlers/handler-data.validation';
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

/** What `createBatch` answers: the batch's tasks, in order, and whether this call made them. */
export interface BatchResult {
  tasks: TaskEntity[];
  /** False when an Idempotency-Key matched an earlier batch: `tasks` are that batch's tasks. */
  created: boolean;
}

/**
 * The key stored on task `index` of a batch submitted with Idempotency-Key `key`. A client's key
 * is visible ASCII (no spaces), so these, with spaces, can never equal a key of `POST /tasks`;
 * the client's key is hashed so any key up to 255 characters fits the column.
 */
export function batchTaskKey(key: string, index: number): string {
  return `batch ${createHash('sha256').update(key).digest('hex')} ${index}`;
}

/** One request of a batch that `createKeyed` creates at once. */
export interface KeyedRequest {
  dto: CreateTaskDto;
  idempotencyKey: string;
  actor?: TaskActor;
}

/** Open mode's actor: no key, the default tenant. */
const OPEN_ACTOR: TaskActor = { keyName: null, tenant: DEFAULT_TENANT };

/** How long a queue-depth reading is reused, so a burst of POSTs costs one COUNT. */
const DEPTH_CACHE_MS = 500;
/** Long polls re-read the row this often, to see changes made by other processes. */
const WAIT_POLL_MS = 250;
/** During a broker outage, failed publishes are logged once per this interval, with a count. */
const PUBLISH_FAILURE_LOG_MS = 10_000;

/** The task use cases behind the REST API. */
@Injectable()
export class TasksService {
  private readonly logger = new Logger(TasksService.name);
  private depth = { value: 0, at: 0, heldMs: 0 };
  /** Stored tasks whose publish failed since the last log line about it. */
  private unpublished = { tasks: 0, loggedAt: 0 };

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
   * The task belongs to `actor`'s tenant; idempotency keys are scoped to it.
   */
  async create(
    dto: CreateTaskDto,
    idempotencyKey?: string,
    actor: TaskActor = OPEN_ACTOR,
  ): Promise<CreateResult> {
    const requestHash = idempotencyKey ? stableHash(dto) : null;
    if (idempotencyKey) {
      const existing = await this.store.findByIdempotencyKey(idempotencyKey, actor.tenant);
      if (existing)
        return { task: this.replay(existing, idempotencyKey, requestHash!), created: false };
    }
    await this.assertRoom(1);
    const task = await this.build(dto, '', actor);
    task.idempotencyKey = idempotencyKey ?? null;
    task.requestHash = requestHash;
    try {
      await this.insertAndPublish([task]);
    } catch (error) {
      if (!idempotencyKey || !isUniqueViolation(error)) throw error;
      // Another request with this key won the race: answer with its task.
      const winner = await this.store.findByIdempotencyKey(idempotencyKey, actor.tenant);
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
      requests.map(async ({ dto, idempotencyKey, actor = OPEN_ACTOR }, index) => {
        try {
          const task = await this.build(dto, '', actor);
          task.idempotencyKey = idempotencyKey;
          task.requestHash = stableHash(dto);
          built.push({ index, task });
        } catch {
          // `create` looks the key up before it validates: a stored task still answers.
          outcomes[index] = await settle(this.create(dto, idempotencyKey, actor));
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
        const { dto, idempotencyKey, actor = OPEN_ACTOR } = requests[index];
        outcomes[index] = await settle(this.create(dto, idempotencyKey, actor));
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
          this.store.findByIdempotencyKey(key, task.tenant).then((existing) => {
            if (!existing)
              throw new Error(`idempotency key ${key} was taken, but its task is gone`);
            return { task: this.replay(existing, key, task.requestHash!), created: false };
          }),
        );
      }),
    );
    return outcomes;
  }

  /**
   * `createMany` with an optional Idempotency-Key for the whole batch: each task of the batch
   * stores a key derived from it and its index (see batchTaskKey), in the same transaction as
   * the rest, so a retry (the client never saw the answer, e.g. the process was killed after the
   * commit) finds the batch instead of creating it again, and racing retries are decided by the
   * unique index. The same key with another body is a conflict.
   */
  async createBatch(
    dtos: CreateTaskDto[],
    idempotencyKey?: string,
    actor: TaskActor = OPEN_ACTOR,
  ): Promise<BatchResult> {
    if (!idempotencyKey) return { tasks: await this.createMany(dtos, actor), created: true };
    const requestHash = stableHash(dtos);
    const earlier = await this.findBatch(idempotencyKey, dtos.length, requestHash, actor.tenant);
    if (earlier) return { tasks: earlier, created: false };
    try {
      const tasks = await this.createMany(dtos, actor, (task, index) => {
        task.idempotencyKey = batchTaskKey(idempotencyKey, index);
        task.requestHash = requestHash;
      });
      return { tasks, created: true };
    } catch (error) {
      if (!isUniqueViolation(error)) throw error;
      // A retry of the same batch committed first: answer with its tasks.
      const winner = await this.findBatch(idempotencyKey, dtos.length, requestHash, actor.tenant);
      // Its first task is gone (retention) but others hold their keys: the key is spent.
      if (!winner) throw new IdempotencyConflictError(idempotencyKey);
      return { tasks: winner, created: false };
    }
  }

  /** All or nothing: every task is validated first, then all rows go in one transaction. */
  async createMany(
    dtos: CreateTaskDto[],
    actor: TaskActor = OPEN_ACTOR,
    prepare?: (task: TaskEntity, index: number) => void,
  ): Promise<TaskEntity[]> {
    const tasks: TaskEntity[] = [];
    const problems: string[] = [];
    for (const [index, dto] of dtos.entries()) {
      try {
        tasks.push(await this.build(dto, `tasks.${index}.`, actor));
      } catch (error) {
        if (error instanceof InvalidTaskRequestError) problems.push(...error.messages);
        else if (error instanceof UnknownActionError)
          problems.push(`tasks.${index}.action: ${error.message}`);
        else throw error;
      }
    }
    if (problems.length > 0) throw new InvalidTaskRequestError(problems);
    if (prepare) tasks.forEach(prepare);
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

  /**
   * The task `id` of `tenant` (another tenant's reads as not found). Without a tenant, any task:
   * for internal callers only (the scheduler's last-task status).
   */
  async findOne(id: string, tenant?: string): Promise<TaskEntity> {
    const task = await this.store.findById(id, tenant);
    if (!task) throw new TaskNotFoundError(id);
    return task;
  }

  /**
   * The task once it is terminal, or as it is when `waitMs` runs out. Woken by this process's
   * events at once; re-reads the row every 250 ms for changes made by other processes.
   */
  async waitFor(id: string, waitMs: number, tenant = DEFAULT_TENANT): Promise<TaskEntity> {
    const deadline = Date.now() + waitMs;
    let task = await this.findOne(id, tenant);
    while (!TERMINAL_STATUSES.includes(task.status) && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(WAIT_POLL_MS, deadline - Date.now()));
        const unsubscribe = this.events.subscribe((event) => {
          // Only wakes the loop: what it answers is read again, within the tenant.
          if (event.taskId === id && TERMINAL_STATUSES.includes(event.status)) done();
        });
        function done(): void {
          clearTimeout(timer);
          unsubscribe();
          resolve();
        }
      });
      task = await this.findOne(id, tenant);
    }
    return task;
  }

  /** One tenant's tasks (the tenant is a condition of the query). */
  list(filter: ListTasksFilter & { tenant: string }): Promise<TaskEntity[]> {
    return this.store.list(filter);
  }

  /**
   * Queued: it will never run (its message finds nothing to claim). Running: its signal
   * aborts, here or in whichever worker process holds it. Terminal: a conflict.
   */
  async cancel(id: string, tenant = DEFAULT_TENANT): Promise<TaskEntity> {
    if (!(await this.store.cancel(id, tenant))) {
      const task = await this.findOne(id, tenant);
      throw new TaskStateConflictError(id, task.status, 'cancelled');
    }
    const task = await this.findOne(id, tenant);
    this.metrics.cancelled.inc({ queue: task.queue, action: task.action });
    this.events.emit({
      type: 'status',
      taskId: id,
      tenant: task.tenant,
      action: task.action,
      status: task.status,
      at: Date.now(),
    });
    return task;
  }

  /**
   * Failed or cancelled: queued again with fresh attempts (the dead-letter redrive). `mayRun`
   * sees the task first and throws to refuse (the caller's action policy). The task keeps the
   * key that created it, which the consumer checks again.
   */
  async retry(
    id: string,
    tenant = DEFAULT_TENANT,
    mayRun: (task: TaskEntity) => void = () => undefined,
  ): Promise<TaskEntity> {
    mayRun(await this.findOne(id, tenant));
    if (!(await this.store.requeueFinished(id, tenant))) {
      const task = await this.findOne(id, tenant);
      throw new TaskStateConflictError(
        id,
        task.status,
        'retried (only failed or cancelled tasks can)',
      );
    }
    const task = await this.findOne(id, tenant);
    await this.publishAccepted([task]);
    return task;
  }

  /** `field` prefixes the names in error messages: '' for one task, `tasks.N.` in a batch. */
  private async build(dto: CreateTaskDto, field: string, actor: TaskActor): Promise<TaskEntity> {
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
      const problems = await handlerDataProblems(handler.dataType, data, `${field}data`);
      if (problems.length > 0) throw new InvalidTaskRequestError(problems);
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
      actor,
      now,
      trace: traceHeaders(),
    });
  }

  /**
   * New rows and their messages: the rows are committed first, then published (where the task
   * table is the queue, the row is the message). A crash or a broker error in between leaves a
   * queued row that recovery publishes again.
   */
  private async insertAndPublish(tasks: TaskEntity[]): Promise<void> {
    await this.store.insert(tasks);
    this.countAccepted(tasks);
    await this.publishAccepted(tasks);
  }

  /** The rows whose key is free, and only their messages; answers the ids that went in. */
  private async insertNewAndPublish(tasks: TaskEntity[]): Promise<Set<string>> {
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
        tenant: task.tenant,
        action: task.action,
        status: task.status,
        at: Date.now(),
      });
    }
  }

  /**
   * Publishes stored tasks, waiting for the broker at most PUBLISH_TIMEOUT_MS: a broker that is
   * down or slow never holds the request longer. A task not published is still answered as
   * accepted, because its row is committed: the reconciler publishes it once the broker is back
   * (at once where the driver reports the reconnect, else after RECONCILE_AFTER_MS).
   */
  private async publishAccepted(tasks: TaskEntity[]): Promise<void> {
    this.emitQueued(tasks);
    const { publishTimeoutMs } = this.config.queue;
    try {
      await within(this.publish(tasks), publishTimeoutMs, 'the queue broker');
    } catch (error) {
      this.unpublished.tasks += tasks.length;
      const now = Date.now();
      if (now - this.unpublished.loggedAt < PUBLISH_FAILURE_LOG_MS) return;
      this.logger.error(
        `${this.unpublished.tasks} task(s) stored but not published (${(error as Error).message}); the reconciler will publish them`,
      );
      this.unpublished = { tasks: 0, loggedAt: now };
    }
  }

  /**
   * The tasks of `tenant`'s batch stored under `key`, in order, or undefined when there is none. A
   * batch is committed whole, so its first task stands for all of them.
   */
  private async findBatch(
    key: string,
    size: number,
    requestHash: string,
    tenant: string,
  ): Promise<TaskEntity[] | undefined> {
    const first = await this.store.findByIdempotencyKey(batchTaskKey(key, 0), tenant);
    if (!first) return undefined;
    if (first.requestHash !== requestHash) throw new IdempotencyConflictError(key);
    const rest = await Promise.all(
      Array.from({ length: size - 1 }, (_, i) =>
        this.store.findByIdempotencyKey(batchTaskKey(key, i + 1), tenant),
      ),
    );
    const tasks = [first, ...rest];
    // Retention may have deleted finished tasks of an old batch; the ones left still answer.
    return tasks.filter((task): task is TaskEntity => task !== null);
  }

  private replay(existing: TaskEntity, key: string, requestHash: string): TaskEntity {
    if (existing.requestHash !== requestHash) throw new IdempotencyConflictError(key);
    return existing;
  }

  private async assertRoom(adding: number): Promise<void> {
    const limit = this.config.task.maxQueueDepth;
    if (limit === 0) return;
    // A count that held the event loop long (SQLite counts a large backlog synchronously) is
    // reused for ten times as long, so the check holds the loop a bounded share of the time.
    // CPU time, so a count a busy machine merely delayed is not taken for a slow one.
    if (Date.now() - this.depth.at > Math.max(DEPTH_CACHE_MS, this.depth.heldMs * 10)) {
      const before = cpuMs();
      const counting = this.store.countQueued();
      const heldMs = cpuMs() - before;
      this.depth = { value: await counting, at: Date.now(), heldMs };
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

import { Injectable, Logger } from '@nestjs/common';
import { plainToInstance } from 'class-transformer';
import { validate, type ValidationError } from 'class-validator';
import { randomUUID } from 'node:crypto';
import type { AppConfig } from '../config/app.config';
import { InjectAppConfig } from '../config/inject-app-config.decorator';
import { MAX_ATTEMPTS_HEADER, QueuePublisher } from '../queue';
import type { CreateTaskDto } from './dto/create-task.dto';
import { InvalidTaskDataError } from './errors/invalid-task-data.error';
import { TaskNotFoundError } from './errors/task-not-found.error';
import { UnknownActionError } from './errors/unknown-action.error';
import type { TaskHandlerMetadata } from './task-handler.decorator';
import { TaskHandlerExplorer } from './task-handler.explorer';
import type { TaskMessage } from './task-message.interface';
import { TaskStatus } from './task-status.enum';
import { TaskEntity } from './task.entity';
import { type ListTasksFilter, TaskStore } from './task.store';

/** The task use cases behind the REST API. */
@Injectable()
export class TasksService {
  private readonly logger = new Logger(TasksService.name);

  constructor(
    private readonly store: TaskStore,
    private readonly explorer: TaskHandlerExplorer,
    private readonly publisher: QueuePublisher,
    @InjectAppConfig() private readonly config: AppConfig,
  ) {}

  /**
   * Validates, writes the row (queued), then publishes. The row is committed first, so a crash
   * or a broker error in between leaves a queued row that recovery publishes again.
   */
  async create(dto: CreateTaskDto): Promise<TaskEntity> {
    const data = dto.data ?? {};
    const handler = this.explorer.resolve(dto.action);
    if (!handler) throw new UnknownActionError(dto.action, this.explorer.actions());
    await this.validateData(handler, data);

    const now = Date.now();
    const task = Object.assign(new TaskEntity(), {
      id: randomUUID(),
      action: dto.action,
      payload: JSON.stringify(data),
      status: TaskStatus.Queued,
      result: null,
      error: null,
      attempt: 0,
      maxAttempts: handler.maxAttempts ?? this.config.task.maxAttempts,
      priority: 0,
      queue: this.config.queue.name,
      progress: null,
      claimToken: null,
      createdAt: now,
      startedAt: null,
      processedAt: null,
      updatedAt: now,
    } satisfies TaskEntity);
    await this.store.insert(task);
    try {
      await this.publish([task]);
    } catch (error) {
      this.logger.error(
        `task ${task.id} stored but not published; recovery will publish it`,
        (error as Error).stack,
      );
    }
    return task;
  }

  /** Publishes each task's next attempt to its queue. */
  async publish(tasks: TaskEntity[]): Promise<void> {
    const byQueue = new Map<string, TaskEntity[]>();
    for (const task of tasks) byQueue.set(task.queue, [...(byQueue.get(task.queue) ?? []), task]);
    for (const [queue, group] of byQueue) {
      await this.publisher.publish<TaskMessage>(
        queue,
        group.map((task) => ({
          body: {
            taskId: task.id,
            action: task.action,
            data: JSON.parse(task.payload) as Record<string, unknown>,
          },
          priority: task.priority,
          attempt: task.attempt + 1,
          headers: { [MAX_ATTEMPTS_HEADER]: String(task.maxAttempts) },
          // A task has at most one live message: publishing it again while one waits, is
          // delayed for a retry or is in flight changes nothing (see TaskRecoveryService).
          deduplicationKey: task.id,
        })),
      );
    }
  }

  async findOne(id: string): Promise<TaskEntity> {
    const task = await this.store.findById(id);
    if (!task) throw new TaskNotFoundError(id);
    return task;
  }

  list(filter: ListTasksFilter): Promise<TaskEntity[]> {
    return this.store.list(filter);
  }

  private async validateData(handler: TaskHandlerMetadata, data: object): Promise<void> {
    if (!handler.dataType) return;
    const errors = await validate(plainToInstance(handler.dataType, data), {
      forbidUnknownValues: false,
    });
    if (errors.length > 0) throw new InvalidTaskDataError(flatten(errors, 'data'));
  }
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

import { ApiProperty } from '@nestjs/swagger';
import { type CallbackStatus, TaskStatus } from '../../persistence/task-status.enum';
import type { TaskEntity } from '../../persistence/task.entity';
import { isJsonObject } from '../../common/dto-metadata';

/** Results are documented as objects (or null); any other value a handler returned is wrapped. */
const asObject = (value: unknown): Record<string, unknown> | null =>
  value === null || isJsonObject(value) ? value : { value };

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** Delivery of the task's result callback (only for tasks submitted with `callbackUrl`). */
export class TaskCallbackDto {
  @ApiProperty({
    enum: ['pending', 'delivered', 'failed'],
    description: 'pending until the receiver answers 2xx (delivered) or attempts run out (failed).',
  })
  status!: CallbackStatus;

  @ApiProperty({ description: 'Deliveries tried so far.' })
  attempts!: number;

  @ApiProperty({ type: String, nullable: true, description: "The last failed delivery's error." })
  lastError!: string | null;
}

export class TaskResponseDto {
  @ApiProperty({ format: 'uuid' })
  id!: string;

  @ApiProperty({ example: 'uppercase' })
  action!: string;

  @ApiProperty({
    type: 'object',
    additionalProperties: true,
    description: 'The input the task was submitted with.',
    example: { text: 'hello world' },
  })
  data!: Record<string, unknown>;

  @ApiProperty({ enum: TaskStatus })
  status!: TaskStatus;

  @ApiProperty({
    description:
      "The handler's return value, an object; null until completed. A handler that returns something else (a number, an array) shows `{value: <it>}`.",
    type: 'object',
    additionalProperties: true,
    nullable: true,
    example: { output: 'HELLO WORLD' },
  })
  result!: Record<string, unknown> | null;

  @ApiProperty({ type: String, nullable: true, description: "The last failed attempt's error." })
  error!: string | null;

  @ApiProperty({ description: 'Attempts started so far.' })
  attempt!: number;

  @ApiProperty()
  maxAttempts!: number;

  @ApiProperty({
    description:
      'Times a worker picked the task up, every claim counted. Above `attempt` when a pickup was repeated without a failed attempt: the worker died or lost its lease, and the same attempt ran again elsewhere.',
    example: 1,
  })
  deliveries!: number;

  @ApiProperty({ description: 'Higher runs first.' })
  priority!: number;

  @ApiProperty({
    type: Number,
    nullable: true,
    description: 'Last progress (0-100) the handler reported.',
  })
  progress!: number | null;

  @ApiProperty({
    type: String,
    nullable: true,
    description: 'The message sent with the last progress.',
  })
  progressMessage!: string | null;

  @ApiProperty({
    type: String,
    format: 'date-time',
    nullable: true,
    description: 'Not run before this time.',
  })
  runAt!: string | null;

  @ApiProperty({ type: Number, nullable: true, description: 'Per-attempt time limit in ms.' })
  timeoutMs!: number | null;

  @ApiProperty({ format: 'date-time' })
  createdAt!: string;

  @ApiProperty({ type: String, format: 'date-time', nullable: true })
  startedAt!: string | null;

  @ApiProperty({ type: String, format: 'date-time', nullable: true })
  processedAt!: string | null;

  @ApiProperty({ example: 'default', description: 'The tenant of the key that created it.' })
  tenant!: string;

  @ApiProperty({
    type: String,
    nullable: true,
    example: 'ci',
    description:
      "Name of the API key that created it (`schedule:<name>` for a schedule's task); null in open mode.",
  })
  createdBy!: string | null;

  @ApiProperty({
    type: TaskCallbackDto,
    nullable: true,
    description: 'Result callback delivery; null without `callbackUrl` or before the task ends.',
  })
  callback!: TaskCallbackDto | null;

  static from(task: TaskEntity): TaskResponseDto {
    return {
      id: task.id,
      action: task.action,
      data: JSON.parse(task.payload) as Record<string, unknown>,
      status: task.status,
      result: task.result === null ? null : asObject(JSON.parse(task.result) as unknown),
      error: task.error,
      attempt: task.attempt,
      maxAttempts: task.maxAttempts,
      deliveries: task.deliveries,
      priority: task.priority,
      progress: task.progress,
      progressMessage: task.progressMessage,
      runAt: iso(task.runAt),
      timeoutMs: task.timeoutMs,
      createdAt: iso(task.createdAt)!,
      startedAt: iso(task.startedAt),
      processedAt: iso(task.processedAt),
      tenant: task.tenant,
      createdBy: task.actorKey,
      callback:
        task.callbackStatus === null
          ? null
          : {
              status: task.callbackStatus,
              attempts: task.callbackAttempts,
              lastError: task.callbackError,
            },
    };
  }
}

export class TaskListResponseDto {
  @ApiProperty({ type: [TaskResponseDto] })
  tasks!: TaskResponseDto[];

  @ApiProperty({
    description:
      'How many tasks this page holds (not a total: follow `nextCursor` until it is null to see them all).',
  })
  count!: number;

  @ApiProperty({
    type: String,
    nullable: true,
    description: 'Pass as `cursor` for the next (older) page; null on the last page.',
  })
  nextCursor!: string | null;
}

import { ApiProperty } from '@nestjs/swagger';
import { TaskStatus } from '../task-status.enum';
import type { TaskEntity } from '../task.entity';

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export class TaskResponseDto {
  @ApiProperty({ format: 'uuid' })
  id!: string;

  @ApiProperty({ example: 'uppercase' })
  action!: string;

  @ApiProperty({ type: 'object', additionalProperties: true, example: { text: 'hello world' } })
  data!: Record<string, unknown>;

  @ApiProperty({ enum: TaskStatus })
  status!: TaskStatus;

  @ApiProperty({
    description: "The handler's return value (parsed JSON); null until completed.",
    nullable: true,
    example: { output: 'HELLO WORLD' },
  })
  result!: unknown;

  @ApiProperty({ type: String, nullable: true, description: "The last failed attempt's error." })
  error!: string | null;

  @ApiProperty({ description: 'Attempts started so far.' })
  attempt!: number;

  @ApiProperty()
  maxAttempts!: number;

  @ApiProperty({ description: 'Higher runs first.' })
  priority!: number;

  @ApiProperty({
    type: Number,
    nullable: true,
    description: 'Last progress (0-100) the handler reported.',
  })
  progress!: number | null;

  @ApiProperty({ format: 'date-time' })
  createdAt!: string;

  @ApiProperty({ type: String, format: 'date-time', nullable: true })
  startedAt!: string | null;

  @ApiProperty({ type: String, format: 'date-time', nullable: true })
  processedAt!: string | null;

  static from(task: TaskEntity): TaskResponseDto {
    return {
      id: task.id,
      action: task.action,
      data: JSON.parse(task.payload) as Record<string, unknown>,
      status: task.status,
      result: task.result === null ? null : (JSON.parse(task.result) as unknown),
      error: task.error,
      attempt: task.attempt,
      maxAttempts: task.maxAttempts,
      priority: task.priority,
      progress: task.progress,
      createdAt: iso(task.createdAt)!,
      startedAt: iso(task.startedAt),
      processedAt: iso(task.processedAt),
    };
  }
}

export class TaskListResponseDto {
  @ApiProperty({ type: [TaskResponseDto] })
  tasks!: TaskResponseDto[];

  @ApiProperty({ description: 'How many tasks this page holds.' })
  count!: number;
}

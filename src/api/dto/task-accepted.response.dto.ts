import { ApiProperty } from '@nestjs/swagger';
import { TaskStatus } from '../../persistence/task-status.enum';

export class TaskAcceptedResponseDto {
  @ApiProperty({ format: 'uuid', example: '550e8400-e29b-41d4-a716-446655440000' })
  id!: string;

  @ApiProperty({
    enum: TaskStatus,
    example: TaskStatus.Queued,
    description: '`queued` for a new task; the current status for an idempotent replay.',
  })
  status!: TaskStatus;
}

export class TasksAcceptedResponseDto {
  @ApiProperty({ type: [TaskAcceptedResponseDto], description: 'In the order submitted.' })
  tasks!: TaskAcceptedResponseDto[];

  @ApiProperty()
  count!: number;
}

import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsOptional, IsUUID, Matches } from 'class-validator';
import { ACTION_PATTERN } from '../../tasks/dto/create-task.dto';

/** Filters of `GET /tasks/events`; without any, every task's changes are streamed. */
export class TaskEventsQueryDto {
  @ApiPropertyOptional({ format: 'uuid', description: "Only this task's changes." })
  @IsOptional()
  @IsUUID('all', { message: 'taskId must be a UUID' })
  taskId?: string;

  @ApiPropertyOptional({ description: "Only changes of this action's tasks.", example: 'sleep' })
  @IsOptional()
  @Matches(ACTION_PATTERN, { message: 'action must be a short identifier' })
  action?: string;
}

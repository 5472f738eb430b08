import { ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  IsEnum,
  IsInt,
  IsISO8601,
  IsOptional,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
} from 'class-validator';
import { TaskStatus } from '../../persistence/task-status.enum';
import { ACTION_PATTERN } from '../../tasks/dto/create-task.dto';

export const MAX_LIST_LIMIT = 100;

export class ListTasksQueryDto {
  @ApiPropertyOptional({
    enum: TaskStatus,
    description: 'Only tasks in this status (`failed` is the dead-letter view).',
  })
  @IsOptional()
  @IsEnum(TaskStatus, { message: `status must be one of: ${Object.values(TaskStatus).join(', ')}` })
  status?: TaskStatus;

  @ApiPropertyOptional({ description: 'Only tasks of this action.' })
  @IsOptional()
  @Matches(ACTION_PATTERN, { message: 'action must be a short identifier' })
  action?: string;

  @ApiPropertyOptional({ format: 'date-time', description: 'Only tasks created after this time.' })
  @IsOptional()
  @IsISO8601({ strict: true }, { message: 'createdAfter must be an ISO 8601 date-time' })
  createdAfter?: string;

  @ApiPropertyOptional({ format: 'date-time', description: 'Only tasks created before this time.' })
  @IsOptional()
  @IsISO8601({ strict: true }, { message: 'createdBefore must be an ISO 8601 date-time' })
  createdBefore?: string;

  @ApiPropertyOptional({
    minimum: 1,
    maximum: MAX_LIST_LIMIT,
    default: MAX_LIST_LIMIT,
    description: 'Most tasks on one page.',
  })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(MAX_LIST_LIMIT)
  limit?: number;

  @ApiPropertyOptional({ description: 'The `nextCursor` of the previous page.' })
  @IsOptional()
  @IsString()
  @MaxLength(200)
  cursor?: string;
}

export const MAX_WAIT_MS = 30_000;

export class GetTaskQueryDto {
  @ApiPropertyOptional({
    minimum: 0,
    maximum: MAX_WAIT_MS,
    description:
      'Answer as soon as the task is completed, failed or cancelled, or after this many ms.',
  })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(0)
  @Max(MAX_WAIT_MS)
  waitMs?: number;
}

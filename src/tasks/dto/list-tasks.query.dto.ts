import { ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsEnum, IsInt, IsOptional, Max, Min } from 'class-validator';
import { TaskStatus } from '../task-status.enum';

export const MAX_LIST_LIMIT = 100;

export class ListTasksQueryDto {
  @ApiPropertyOptional({
    enum: TaskStatus,
    description: 'Only tasks in this status (`failed` is the dead-letter view).',
  })
  @IsOptional()
  @IsEnum(TaskStatus, { message: `status must be one of: ${Object.values(TaskStatus).join(', ')}` })
  status?: TaskStatus;

  @ApiPropertyOptional({ minimum: 1, maximum: MAX_LIST_LIMIT, default: MAX_LIST_LIMIT })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(MAX_LIST_LIMIT)
  limit?: number;
}

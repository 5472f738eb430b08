import { ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsOptional, IsString, Max, MaxLength, Min } from 'class-validator';

export const MAX_SCHEDULE_LIST = 1000;

export class ListSchedulesQueryDto {
  @ApiPropertyOptional({
    minimum: 1,
    maximum: MAX_SCHEDULE_LIST,
    description: 'At most this many, by name. Default 100.',
  })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(MAX_SCHEDULE_LIST)
  limit?: number;

  @ApiPropertyOptional({ description: "The previous page's nextCursor." })
  @IsOptional()
  @IsString()
  @MaxLength(128)
  cursor?: string;
}

import { ApiProperty } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { ArrayMaxSize, ArrayMinSize, IsArray, IsObject, ValidateNested } from 'class-validator';
import { CreateTaskDto } from '../../tasks/dto/create-task.dto';

export const MAX_BATCH = 1000;

export class CreateTasksBatchDto {
  @ApiProperty({ type: [CreateTaskDto], minItems: 1, maxItems: MAX_BATCH })
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(MAX_BATCH)
  // ValidateNested passes an item that is itself an array (it validates that array's items).
  @IsObject({ each: true })
  @ValidateNested({ each: true })
  @Type(() => CreateTaskDto)
  tasks!: CreateTaskDto[];
}

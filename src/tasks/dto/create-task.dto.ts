import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsObject, IsOptional, IsString, Matches } from 'class-validator';

export const ACTION_PATTERN = /^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/;

export class CreateTaskDto {
  @ApiProperty({
    description:
      'Which handler runs the task: a short identifier (letter first, up to 64 of letters, digits, _ . : -).',
    example: 'uppercase',
  })
  @IsString()
  @Matches(ACTION_PATTERN, {
    message:
      'action must be a short identifier: a letter, then up to 63 letters, digits, _ . : or -',
  })
  action!: string;

  @ApiPropertyOptional({
    description: "The handler's input; an object, `{}` when omitted.",
    type: 'object',
    additionalProperties: true,
    example: { text: 'hello world' },
  })
  @IsOptional()
  @IsObject()
  data?: Record<string, unknown>;
}

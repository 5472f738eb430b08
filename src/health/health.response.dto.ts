import { ApiProperty } from '@nestjs/swagger';

/** `GET /health`'s answer, 200 and 503 alike. */
export class HealthResponseDto {
  @ApiProperty({ enum: ['ok', 'error', 'shutting_down'] })
  status!: string;

  @ApiProperty({ description: '`up`, or `down: ` and the error.', example: 'up' })
  database!: string;

  @ApiProperty({
    description: '`up`, or `down: ` and each failing driver with its error.',
    example: 'up',
  })
  queue!: string;

  @ApiProperty({
    enum: ['keys', 'open'],
    description: '`keys`: every route but health and docs needs an API key; `open`: none does.',
  })
  auth!: string;
}

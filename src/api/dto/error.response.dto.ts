import { ApiProperty } from '@nestjs/swagger';

/** Every error the service answers (4xx and 5xx), on both HTTP adapters. */
export class ErrorResponseDto {
  @ApiProperty({ type: 'integer', description: 'The HTTP status again.', example: 400 })
  statusCode!: number;

  @ApiProperty({ description: "The status's reason phrase.", example: 'Bad Request' })
  error!: string;

  @ApiProperty({
    description:
      'What went wrong: one sentence, or for a refused request body one line per problem, each naming its field.',
    oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }],
    example: ['data.text must be a string'],
  })
  message!: string | string[];
}

import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import {
  IsInt,
  IsISO8601,
  IsOptional,
  IsString,
  IsUrl,
  Matches,
  Max,
  MaxLength,
  Min,
} from 'class-validator';
import { IsFreeFormObject } from '../../common/dto-metadata';

export const ACTION_PATTERN = /^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/;
/** Priorities every driver supports natively (RabbitMQ's x-max-priority is 10). */
export const MAX_PRIORITY = 10;
const DAY_MS = 86_400_000;

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
    description:
      "The handler's input: any JSON object (`{}` when omitted; `null` is refused). At most MAX_DATA_DEPTH levels deep and MAX_DATA_KEYS keys; a handler that declares a data type checks its fields.",
    type: 'object',
    additionalProperties: true,
    example: { text: 'hello world' },
  })
  @IsFreeFormObject()
  data?: Record<string, unknown>;

  @ApiPropertyOptional({
    description: `0 to ${MAX_PRIORITY}; higher runs first, FIFO within one priority. Default 0.`,
    minimum: 0,
    maximum: MAX_PRIORITY,
  })
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(MAX_PRIORITY)
  priority?: number;

  @ApiPropertyOptional({
    description:
      'Run no sooner than this many milliseconds from now (up to 30 days). Not with runAt.',
    minimum: 0,
    maximum: 30 * DAY_MS,
  })
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(30 * DAY_MS)
  delayMs?: number;

  @ApiPropertyOptional({
    description: 'Run no sooner than this time (ISO 8601). Not with delayMs.',
    format: 'date-time',
  })
  @IsOptional()
  @IsISO8601({ strict: true }, { message: 'runAt must be an ISO 8601 date-time' })
  runAt?: string;

  @ApiPropertyOptional({
    description: 'Attempts before the task fails for good (1-100).',
    minimum: 1,
    maximum: 100,
  })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(100)
  maxAttempts?: number;

  @ApiPropertyOptional({
    description:
      "Per-attempt time limit in ms; the handler's signal aborts and the attempt fails (then retries). Defaults to the handler's option, then TASK_TIMEOUT_MS.",
    minimum: 1,
    maximum: DAY_MS,
  })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(DAY_MS)
  timeoutMs?: number;

  @ApiPropertyOptional({
    description:
      "POSTed the task's JSON when it ends (signed with HMAC-SHA256 in X-Taskq-Signature), retried with backoff.",
    example: 'https://example.com/hooks/task-done',
  })
  @IsOptional()
  @MaxLength(2048)
  @IsUrl(
    { protocols: ['http', 'https'], require_protocol: true, require_tld: false },
    { message: 'callbackUrl must be an http or https URL' },
  )
  callbackUrl?: string;
}

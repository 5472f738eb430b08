import {
  ApiProperty,
  ApiPropertyOptional,
  IntersectionType,
  OmitType,
  PickType,
} from '@nestjs/swagger';
import {
  IsBoolean,
  IsIn,
  IsInt,
  IsISO8601,
  IsOptional,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
} from 'class-validator';
import { CreateTaskDto } from '../../tasks/dto/create-task.dto';
import { MISSED_POLICIES, type MissedPolicy } from '../schedule.model';

/** Names go into URLs (/schedules/:name) and idempotency keys: no spaces or slashes. */
export const SCHEDULE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;

/**
 * The task each run submits: the same fields, checks and messages as `POST /tasks`, less the
 * one-off timing (`delayMs`, `runAt`), which the schedule's own timing replaces.
 */
class ScheduledTaskFields extends PickType(CreateTaskDto, [
  'action',
  'data',
  'priority',
  'maxAttempts',
  'timeoutMs',
  'callbackUrl',
] as const) {}

class ScheduleFields {
  @ApiProperty({
    description: 'Unique name (letter or digit first, up to 128 of letters, digits, _ . : -).',
    example: 'nightly-report',
  })
  @IsString()
  @Matches(SCHEDULE_NAME_PATTERN, {
    message:
      'name must be a letter or digit, then up to 127 letters, digits, _ . : or - (no spaces or slashes)',
  })
  name!: string;

  @ApiPropertyOptional({
    description:
      'Cron expression: 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first; `@daily`-style aliases too. Not with `every`.',
    example: '0 3 * * *',
  })
  @IsOptional()
  @IsString()
  @MaxLength(255)
  cron?: string;

  @ApiPropertyOptional({
    description:
      'Fixed period instead of cron: a duration such as 30s, 15m, 1h30m (units ms s m h d), at least 1s. Ticks fall on multiples of it from startAt, or from the Unix epoch.',
    example: '15m',
  })
  @IsOptional()
  @IsString()
  @MaxLength(32)
  every?: string;

  @ApiPropertyOptional({
    description: 'IANA time zone the cron fields are read in. Default UTC.',
    example: 'Europe/Berlin',
  })
  @IsOptional()
  @IsString()
  @MaxLength(64)
  timezone?: string;

  @ApiPropertyOptional({
    enum: MISSED_POLICIES,
    description:
      'Ticks that passed while no scheduler ran: skip (none; a tick more than 30 s late is missed), latest (one run for the most recent; default), all (each of them, at most 100, oldest first).',
  })
  @IsOptional()
  @IsIn(MISSED_POLICIES, { message: `missed must be one of: ${MISSED_POLICIES.join(', ')}` })
  missed?: MissedPolicy;

  @ApiPropertyOptional({
    description:
      'false: a tick is skipped (and counted) while the previous run is still queued or running. Default true.',
  })
  @IsOptional()
  @IsBoolean()
  overlap?: boolean;

  @ApiPropertyOptional({ format: 'date-time', description: 'No run before this time.' })
  @IsOptional()
  @IsISO8601({ strict: true }, { message: 'startAt must be an ISO 8601 date-time' })
  startAt?: string;

  @ApiPropertyOptional({ format: 'date-time', description: 'No run after this time.' })
  @IsOptional()
  @IsISO8601({ strict: true }, { message: 'endAt must be an ISO 8601 date-time' })
  endAt?: string;

  @ApiPropertyOptional({
    minimum: 1,
    description: 'Runs in all; then the schedule is finished. Triggers do not count.',
  })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(1_000_000_000)
  limit?: number;
}

export class CreateScheduleDto extends IntersectionType(ScheduleFields, ScheduledTaskFields) {}

/** `PUT /schedules/:name`: the whole definition, named by the path. */
export class PutScheduleDto extends OmitType(CreateScheduleDto, ['name'] as const) {}

import { ApiProperty } from '@nestjs/swagger';
import { TaskStatus } from '../../persistence/task-status.enum';
import { MISSED_POLICIES, type MissedPolicy } from '../schedule.model';

export class ScheduleResponseDto {
  @ApiProperty({ example: 'nightly-report' })
  name!: string;

  @ApiProperty({ example: 'report' })
  action!: string;

  @ApiProperty({ type: 'object', additionalProperties: true })
  data!: Record<string, unknown>;

  @ApiProperty({ type: String, nullable: true, example: '0 3 * * *' })
  cron!: string | null;

  @ApiProperty({ type: String, nullable: true, example: '15m' })
  every!: string | null;

  @ApiProperty({ example: 'Europe/Berlin' })
  timezone!: string;

  @ApiProperty({ enum: MISSED_POLICIES })
  missed!: MissedPolicy;

  @ApiProperty({ description: 'false: ticks are skipped while the previous run is unfinished.' })
  overlap!: boolean;

  @ApiProperty({ type: Number, nullable: true })
  priority!: number | null;

  @ApiProperty({ type: Number, nullable: true })
  maxAttempts!: number | null;

  @ApiProperty({ type: Number, nullable: true })
  timeoutMs!: number | null;

  @ApiProperty({ type: String, nullable: true })
  callbackUrl!: string | null;

  @ApiProperty({ type: String, format: 'date-time', nullable: true })
  startAt!: string | null;

  @ApiProperty({ type: String, format: 'date-time', nullable: true })
  endAt!: string | null;

  @ApiProperty({ type: Number, nullable: true })
  limit!: number | null;

  @ApiProperty({ enum: ['api', 'code'], description: 'code: declared by @TaskHandler.' })
  source!: 'api' | 'code';

  @ApiProperty({
    enum: ['active', 'paused', 'finished', 'disabled'],
    description:
      'finished: endAt or limit reached; disabled: declared in code and no longer declared.',
  })
  state!: string;

  @ApiProperty()
  paused!: boolean;

  @ApiProperty({ type: String, format: 'date-time', nullable: true })
  nextRunAt!: string | null;

  @ApiProperty({
    type: String,
    format: 'date-time',
    nullable: true,
    description: 'The tick (or trigger) time of the last run.',
  })
  lastRunAt!: string | null;

  @ApiProperty({ type: String, nullable: true, format: 'uuid' })
  lastTaskId!: string | null;

  @ApiProperty({
    enum: TaskStatus,
    nullable: true,
    description: "The last run's task status (null when none, or deleted by retention).",
  })
  lastTaskStatus!: TaskStatus | null;

  @ApiProperty({ description: 'Ticks run (triggers not included).' })
  runCount!: number;

  @ApiProperty({ description: 'Ticks not run because of the missed policy.' })
  missedCount!: number;

  @ApiProperty({ description: 'Ticks skipped because the previous run was still unfinished.' })
  overlapSkipped!: number;

  @ApiProperty({ format: 'date-time' })
  createdAt!: string;

  @ApiProperty({ format: 'date-time' })
  updatedAt!: string;
}

export class ScheduleListResponseDto {
  @ApiProperty({ type: [ScheduleResponseDto] })
  schedules!: ScheduleResponseDto[];

  @ApiProperty()
  count!: number;

  @ApiProperty({ type: String, nullable: true, description: 'Pass as cursor for the next page.' })
  nextCursor!: string | null;
}

export class ScheduleRunResponseDto {
  @ApiProperty({ format: 'uuid', description: 'The task of this run.' })
  id!: string;

  @ApiProperty({ enum: TaskStatus })
  status!: TaskStatus;
}

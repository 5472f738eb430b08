import type { ScheduleTiming } from './schedule-timing';

/** What happens to ticks that passed while no scheduler ran (see README, "Schedules"). */
export const MISSED_POLICIES = ['skip', 'latest', 'all'] as const;
export type MissedPolicy = (typeof MISSED_POLICIES)[number];

/**
 * `active`: has a next run. `paused`: by the API. `finished`: endAt or limit reached.
 * `disabled`: declared in code once, no longer declared.
 */
export type ScheduleState = 'active' | 'paused' | 'finished' | 'disabled';

/** Where a schedule came from: `POST /schedules`, or `@TaskHandler(..., { schedule })`. */
export type ScheduleSource = 'api' | 'code';

/** What a schedule is: everything its creator said, validated and normalised. */
export interface ScheduleDefinition {
  name: string;
  action: string;
  data: Record<string, unknown>;
  cron: string | null;
  everyMs: number | null;
  timezone: string;
  missed: MissedPolicy;
  overlap: boolean;
  priority: number | null;
  maxAttempts: number | null;
  timeoutMs: number | null;
  callbackUrl: string | null;
  startAt: number | null;
  endAt: number | null;
  limit: number | null;
}

/** A stored schedule: its definition and where it stands. */
export interface Schedule extends ScheduleDefinition {
  source: ScheduleSource;
  /** Identifies the definition, so a code-declared schedule is rewritten only when it changed. */
  definitionHash: string;
  state: ScheduleState;
  nextRunAt: number | null;
  runCount: number;
  /** Ticks not run because of the `missed` policy. */
  missedCount: number;
  /** Ticks not run because `overlap: false` and the previous run was still queued or running. */
  overlapSkipped: number;
  /** The tick (or trigger) time of the last run. */
  lastRunAt: number | null;
  lastTaskId: string | null;
  createdAt: number;
  updatedAt: number;
}

/** A claimed schedule: `claimToken` fences the write that records its runs. */
export interface ClaimedSchedule extends Schedule {
  claimToken: string;
}

export function timingOf(schedule: ScheduleDefinition): ScheduleTiming {
  return {
    cron: schedule.cron,
    everyMs: schedule.everyMs,
    timezone: schedule.timezone,
    startAt: schedule.startAt,
    endAt: schedule.endAt,
    seed: schedule.name,
  };
}

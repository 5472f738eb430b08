import { Injectable, Logger } from '@nestjs/common';
import { plainToInstance } from 'class-transformer';
import { handlerDataProblems } from '../handlers/handler-data.validation';
import { validate, type ValidationError } from 'class-validator';
import { randomUUID } from 'node:crypto';
import { QueryFailedError } from 'typeorm';
import { DEFAULT_TENANT, SCHEDULE_ACTOR_PREFIX, type TaskActor } from '../auth/actor';
import { stableHash } from '../common/stable-hash';
import { checkCallbackUrl } from '../callbacks/callback-url';
import type { AppConfig } from '../config/app.config';
import { InjectAppConfig } from '../config/inject-app-config.decorator';
import { InvalidTaskHandlerError } from '../handlers/errors/invalid-task-handler.error';
import { FALLBACK_ACTION } from '../handlers/task-handler.decorator';
import { TaskHandlerExplorer } from '../handlers/task-handler.explorer';
import { TaskStatus } from '../persistence/task-status.enum';
import type { TaskEntity } from '../persistence/task.entity';
import type { CreateTaskDto } from '../tasks/dto/create-task.dto';
import { IdempotencyConflictError } from '../tasks/errors/idempotency-conflict.error';
import { TaskNotFoundError } from '../tasks/errors/task-not-found.error';
import { UnknownActionError } from '../tasks/errors/unknown-action.error';
import { TasksService } from '../tasks/tasks.service';
import { CreateScheduleDto } from './dto/create-schedule.dto';
import type { ScheduleResponseDto } from './dto/schedule.response.dto';
import { ScheduleChanges } from './schedule-changes';
import { ScheduleClock } from './schedule-clock';
import { checkCron, checkTimezone, nextTick, parseEvery } from './schedule-timing';
import {
  InvalidScheduleError,
  ScheduleExistsError,
  ScheduleNotFoundError,
  ScheduleStateError,
} from './schedule.errors';
import {
  type Schedule,
  type ScheduleDefinition,
  type ScheduleSource,
  timingOf,
} from './schedule.model';
import { ScheduleStore } from './schedule.store';

/** What a schedule is made from: the REST body, or a handler's `schedule` option. */
export type ScheduleInput = Omit<CreateScheduleDto, 'missed'> & { missed?: string };

/** The schedule use cases behind /schedules, code-declared schedules, and each tick's task. */
@Injectable()
export class SchedulesService {
  private readonly logger = new Logger(SchedulesService.name);

  constructor(
    private readonly store: ScheduleStore,
    private readonly explorer: TaskHandlerExplorer,
    private readonly tasks: TasksService,
    private readonly clock: ScheduleClock,
    private readonly changes: ScheduleChanges,
    @InjectAppConfig() private readonly config: AppConfig,
  ) {}

  async create(input: ScheduleInput): Promise<ScheduleResponseDto> {
    const definition = await this.define(input);
    const schedule = this.newSchedule(definition, 'api');
    // Checked first so the usual conflict is not a failed statement in the log; the primary
    // key still decides a race.
    if (await this.store.find(definition.name)) throw new ScheduleExistsError(definition.name);
    try {
      await this.store.insert(schedule);
    } catch (error) {
      if (isUniqueViolation(error)) throw new ScheduleExistsError(definition.name);
      throw error;
    }
    this.changes.notify();
    return this.view(schedule);
  }

  /**
   * Creates the schedule, or replaces the definition of the one of that name: its counters and
   * last run stay, a paused one stays paused, and the next run is computed from now under the
   * new definition. `created` says which. A code-declared schedule is changed in code only.
   */
  async put(input: ScheduleInput): Promise<{ schedule: ScheduleResponseDto; created: boolean }> {
    const definition = await this.define(input);
    const stored = await this.store.find(definition.name);
    if (!stored) return { schedule: await this.create(input), created: true };
    if (stored.source === 'code') {
      throw new ScheduleStateError(definition.name, 'declared in code', 'replaced over the API');
    }
    const fresh = this.newSchedule(definition, 'api');
    const limitReached = definition.limit !== null && stored.runCount >= definition.limit;
    const state =
      stored.state === 'paused'
        ? 'paused'
        : limitReached || fresh.nextRunAt === null
          ? 'finished'
          : 'active';
    await this.store.replace({
      ...stored,
      ...definition,
      definitionHash: fresh.definitionHash,
      state,
      nextRunAt: state === 'active' ? fresh.nextRunAt : null,
      updatedAt: this.clock.now(),
    });
    this.changes.notify();
    return { schedule: await this.get(definition.name), created: false };
  }

  async get(name: string): Promise<ScheduleResponseDto> {
    return this.view(await this.require(name));
  }

  async list(
    limit: number,
    cursor?: string,
  ): Promise<{ schedules: ScheduleResponseDto[]; nextCursor: string | null }> {
    const page = await this.store.list(limit, cursor);
    return {
      schedules: await Promise.all(page.map((s) => this.view(s))),
      nextCursor: page.length === limit ? page[page.length - 1].name : null,
    };
  }

  /** No tick runs while paused; pausing a paused schedule changes nothing. */
  async pause(name: string): Promise<ScheduleResponseDto> {
    if (!(await this.store.setState(name, ['active'], 'paused', null, this.clock.now()))) {
      const schedule = await this.require(name);
      if (schedule.state !== 'paused') throw new ScheduleStateError(name, schedule.state, 'paused');
    }
    return this.get(name);
  }

  /**
   * Runs again from the next tick after now: ticks that fell while it was paused were not
   * wanted, so no missed policy applies to them.
   */
  async resume(name: string): Promise<ScheduleResponseDto> {
    const now = this.clock.now();
    const schedule = await this.require(name);
    if (schedule.state === 'active') return this.view(schedule);
    if (schedule.state !== 'paused') throw new ScheduleStateError(name, schedule.state, 'resumed');
    const next = this.limitReached(schedule) ? null : nextTick(timingOf(schedule), now);
    const state = next === null ? 'finished' : 'active';
    await this.store.setState(name, ['paused'], state, next, now);
    this.changes.notify();
    return this.get(name);
  }

  /** Runs the schedule's action now, outside its ticks; does not count towards `limit`. */
  async trigger(name: string): Promise<TaskEntity> {
    const schedule = await this.require(name);
    const now = this.clock.now();
    const { task } = await this.tasks.create(
      taskRequest(schedule),
      `schedule:${name}:trigger:${randomUUID()}`,
      scheduleActor(schedule),
    );
    await this.store.recordTrigger(name, now, task.id);
    return task;
  }

  async delete(name: string): Promise<void> {
    if (!(await this.store.delete(name))) throw new ScheduleNotFoundError(name);
  }

  /**
   * The task of one tick. Its idempotency key names the schedule and the tick, so however many
   * processes run this tick, the unique index lets one task exist. Null when the key's task was
   * made from an older version of the schedule (its request differs): the tick has run.
   */
  async runTick(schedule: Schedule, tick: number): Promise<TaskEntity | null> {
    try {
      const key = tickKey(schedule, tick);
      return (await this.tasks.create(taskRequest(schedule), key, scheduleActor(schedule))).task;
    } catch (error) {
      if (error instanceof IdempotencyConflictError) return null;
      throw error;
    }
  }

  /**
   * runTick for many ticks in one batch (one insert, one publish): one outcome per tick, in
   * order, each what runTick would have answered or thrown.
   */
  async runTicks(
    ticks: { schedule: Schedule; tick: number }[],
  ): Promise<PromiseSettledResult<TaskEntity | null>[]> {
    const outcomes = await this.tasks.createKeyed(
      ticks.map(({ schedule, tick }) => ({
        dto: taskRequest(schedule),
        idempotencyKey: tickKey(schedule, tick),
        actor: scheduleActor(schedule),
      })),
    );
    return outcomes.map((outcome) =>
      outcome.status === 'fulfilled'
        ? { status: 'fulfilled', value: outcome.value.task }
        : outcome.reason instanceof IdempotencyConflictError
          ? { status: 'fulfilled', value: null }
          : outcome,
    );
  }

  /** Whether a task is still queued or running (a deleted one is not). */
  async unfinished(taskId: string | null): Promise<boolean> {
    if (!taskId) return false;
    try {
      const { status } = await this.tasks.findOne(taskId);
      return status === TaskStatus.Queued || status === TaskStatus.Running;
    } catch (error) {
      if (error instanceof TaskNotFoundError) return false;
      throw error;
    }
  }

  /**
   * Makes the stored code-declared schedules match the `@TaskHandler(…, { schedule })` options:
   * new ones are created, changed ones rewritten (a paused one stays paused), ones no longer
   * declared disabled. A name taken by an API schedule is left alone, with a warning. Safe to
   * run in several processes at once: a lost insert race becomes an update.
   */
  async reconcileDeclared(): Promise<void> {
    const declared = new Map<string, ScheduleDefinition>();
    for (const handler of this.explorer.list()) {
      if (!handler.schedule || handler.action === FALLBACK_ACTION) continue;
      const input = { ...handler.schedule, name: handler.action, action: handler.action };
      try {
        // A declaration is not a request, but it gets the same checks as one.
        const problems = flatten(
          await validate(plainToInstance(CreateScheduleDto, input), {
            whitelist: true,
            forbidNonWhitelisted: true,
          }),
          '',
        ).map((line) => line.replace(/^\./, ''));
        if (problems.length > 0) throw new InvalidScheduleError(problems);
        declared.set(handler.action, await this.define(input));
      } catch (error) {
        const problems =
          error instanceof InvalidScheduleError ? error.messages : [(error as Error).message];
        throw new InvalidTaskHandlerError(`${handler.label}: schedule: ${problems.join('; ')}`);
      }
    }
    for (const definition of declared.values()) await this.applyDeclared(definition);
    for (let after: string | undefined; ;) {
      const page = await this.store.list(500, after, 'code');
      for (const stored of page) {
        if (declared.has(stored.name) || stored.state === 'disabled') continue;
        await this.store.setState(
          stored.name,
          ['active', 'paused', 'finished'],
          'disabled',
          null,
          this.clock.now(),
        );
        this.logger.log(`schedule "${stored.name}" is no longer declared in code: disabled`);
      }
      if (page.length < 500) break;
      after = page[page.length - 1].name;
    }
    this.changes.notify();
  }

  private async applyDeclared(definition: ScheduleDefinition): Promise<void> {
    const fresh = this.newSchedule(definition, 'code');
    let stored = await this.store.find(definition.name);
    if (!stored) {
      try {
        await this.store.insert(fresh);
        this.logger.log(`schedule "${definition.name}" declared in code: created`);
        return;
      } catch (error) {
        if (!isUniqueViolation(error)) throw error;
        stored = await this.store.find(definition.name);
        if (!stored) throw error;
      }
    }
    if (stored.source !== 'code') {
      this.logger.warn(
        `schedule "${definition.name}" is declared in code but was created over the API; the API's is kept`,
      );
      return;
    }
    if (stored.definitionHash === fresh.definitionHash && stored.state !== 'disabled') return;
    const state = stored.state === 'paused' ? 'paused' : fresh.state;
    await this.store.replace({
      ...stored,
      ...definition,
      definitionHash: fresh.definitionHash,
      state,
      nextRunAt: state === 'paused' ? null : fresh.nextRunAt,
      updatedAt: this.clock.now(),
    });
    this.logger.log(`schedule "${definition.name}" declared in code: updated`);
  }

  /** Checks what DTO validation cannot (cron, zone, duration, action, data) and normalises. */
  private async define(input: ScheduleInput): Promise<ScheduleDefinition> {
    const problems: string[] = [];
    const timezone = input.timezone ?? 'UTC';
    const zoneProblem = checkTimezone(timezone);
    if (zoneProblem) problems.push(zoneProblem);
    if (input.cron !== undefined && input.every !== undefined) {
      problems.push('cron and every cannot both be set');
    } else if (input.cron === undefined && input.every === undefined) {
      problems.push('cron or every is required');
    }
    if (input.cron !== undefined) {
      const cronProblem = checkCron(input.cron, zoneProblem ? 'UTC' : timezone);
      if (cronProblem) problems.push(cronProblem);
    }
    let everyMs: number | null = null;
    if (input.every !== undefined) {
      const parsed = parseEvery(input.every);
      if (typeof parsed === 'string') problems.push(parsed);
      else everyMs = parsed;
    }
    const missed = input.missed ?? 'latest';
    if (missed !== 'skip' && missed !== 'latest' && missed !== 'all') {
      problems.push('missed must be one of: skip, latest, all');
    }
    const startAt = input.startAt !== undefined ? Date.parse(input.startAt) : null;
    const endAt = input.endAt !== undefined ? Date.parse(input.endAt) : null;
    if (startAt !== null && endAt !== null && endAt <= startAt) {
      problems.push('endAt must be after startAt');
    }
    if (input.callbackUrl !== undefined) {
      const refused = checkCallbackUrl(input.callbackUrl, this.config.callback.allowPrivate);
      if (refused) problems.push(refused);
    }
    const handler = this.explorer.resolve(input.action);
    if (!handler) throw new UnknownActionError(input.action, this.explorer.actions());
    const data = input.data ?? {};
    if (handler.dataType) problems.push(...(await handlerDataProblems(handler.dataType, data)));
    if (problems.length > 0) throw new InvalidScheduleError(problems);
    return {
      name: input.name,
      action: input.action,
      data,
      cron: input.cron?.trim() ?? null,
      everyMs,
      timezone,
      missed: missed as ScheduleDefinition['missed'],
      overlap: input.overlap ?? true,
      priority: input.priority ?? null,
      maxAttempts: input.maxAttempts ?? null,
      timeoutMs: input.timeoutMs ?? null,
      callbackUrl: input.callbackUrl ?? null,
      startAt,
      endAt,
      limit: input.limit ?? null,
    };
  }

  private newSchedule(definition: ScheduleDefinition, source: ScheduleSource): Schedule {
    const now = this.clock.now();
    const next = nextTick(timingOf(definition), now);
    return {
      ...definition,
      source,
      definitionHash: stableHash(definition),
      state: next === null ? 'finished' : 'active',
      nextRunAt: next,
      runCount: 0,
      missedCount: 0,
      overlapSkipped: 0,
      lastRunAt: null,
      lastTaskId: null,
      createdAt: now,
      updatedAt: now,
    };
  }

  private limitReached(schedule: Schedule): boolean {
    return schedule.limit !== null && schedule.runCount >= schedule.limit;
  }

  private async require(name: string): Promise<Schedule> {
    const schedule = await this.store.find(name);
    if (!schedule) throw new ScheduleNotFoundError(name);
    return schedule;
  }

  private async view(schedule: Schedule): Promise<ScheduleResponseDto> {
    let lastTaskStatus: TaskStatus | null = null;
    if (schedule.lastTaskId) {
      lastTaskStatus = await this.tasks.findOne(schedule.lastTaskId).then(
        (task) => task.status,
        () => null,
      );
    }
    return {
      name: schedule.name,
      action: schedule.action,
      data: schedule.data,
      cron: schedule.cron,
      every: schedule.everyMs === null ? null : formatDuration(schedule.everyMs),
      timezone: schedule.timezone,
      missed: schedule.missed,
      overlap: schedule.overlap,
      priority: schedule.priority,
      maxAttempts: schedule.maxAttempts,
      timeoutMs: schedule.timeoutMs,
      callbackUrl: schedule.callbackUrl,
      startAt: iso(schedule.startAt),
      endAt: iso(schedule.endAt),
      limit: schedule.limit,
      source: schedule.source,
      state: schedule.state,
      paused: schedule.state === 'paused',
      nextRunAt: iso(schedule.nextRunAt),
      lastRunAt: iso(schedule.lastRunAt),
      lastTaskId: schedule.lastTaskId,
      lastTaskStatus,
      runCount: schedule.runCount,
      missedCount: schedule.missedCount,
      overlapSkipped: schedule.overlapSkipped,
      createdAt: new Date(schedule.createdAt).toISOString(),
      updatedAt: new Date(schedule.updatedAt).toISOString(),
    };
  }
}

/** A tick's idempotency key: the schedule and the tick, so each tick has one task. */
function tickKey(schedule: Schedule, tick: number): string {
  return `schedule:${schedule.name}:${new Date(tick).toISOString()}`;
}

/** The task each run submits: an ordinary task request. */
function taskRequest(schedule: ScheduleDefinition): CreateTaskDto {
  const request: CreateTaskDto = { action: schedule.action, data: schedule.data };
  if (schedule.priority !== null) request.priority = schedule.priority;
  if (schedule.maxAttempts !== null) request.maxAttempts = schedule.maxAttempts;
  if (schedule.timeoutMs !== null) request.timeoutMs = schedule.timeoutMs;
  if (schedule.callbackUrl !== null) request.callbackUrl = schedule.callbackUrl;
  return request;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** 5400000 → '1h30m': the largest units that add up exactly. */
export function formatDuration(ms: number): string {
  const units: [string, number][] = [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
    ['ms', 1],
  ];
  let rest = ms;
  let text = '';
  for (const [unit, size] of units) {
    const amount = Math.floor(rest / size);
    if (amount > 0) text += `${amount}${unit}`;
    rest -= amount * size;
  }
  return text || '0ms';
}

function isUniqueViolation(error: unknown): boolean {
  if (!(error instanceof QueryFailedError)) return false;
  const { code } = error.driverError as { code?: string };
  return (
    code === 'SQLITE_CONSTRAINT_PRIMARYKEY' ||
    code === 'SQLITE_CONSTRAINT_UNIQUE' ||
    code === '23505'
  );
}

/** class-validator errors as "data.field ..." lines, nested fields included. */
function flatten(errors: ValidationError[], prefix: string): string[] {
  return errors.flatMap((error) => {
    const path = `${prefix}.${error.property}`;
    const own = Object.values(error.constraints ?? {}).map((text) =>
      text.startsWith(error.property) ? `${prefix}.${text}` : `${path}: ${text}`,
    );
    return [...own, ...flatten(error.children ?? [], path)];
  });
}

/**
 * Who a schedule's tasks run for: the schedule itself, in the default tenant. Schedules are
 * operator objects (only an `admin` key manages them), so the consumer runs their tasks
 * whatever key made the schedule (see ApiKeyStore.refusal).
 */
function scheduleActor(schedule: Schedule): TaskActor {
  return { keyName: `${SCHEDULE_ACTOR_PREFIX}${schedule.name}`, tenant: DEFAULT_TENANT };
}

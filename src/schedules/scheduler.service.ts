import {
  type BeforeApplicationShutdown,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { ScheduleChanges } from './schedule-changes';
import { ScheduleClock } from './schedule-clock';
import { dueTicks } from './schedule-timing';
import { type ClaimedSchedule, timingOf } from './schedule.model';
import { type ScheduleRunRecord, ScheduleStore } from './schedule.store';
import { SchedulesService } from './schedules.service';

/** Schedules claimed per statement; a pass claims batches until nothing due is left. */
export const CLAIM_BATCH = 100;
/** How long a claim is held: a process that dies mid-pass delays its schedules this long at most. */
export const CLAIM_LEASE_MS = 30_000;
/** With `missed: 'skip'`, a tick later than this is missed rather than late. */
export const MISFIRE_AFTER_MS = 30_000;
/** With `missed: 'all'`, at most this many passed ticks run (the most recent). */
export const MAX_BACKFILL = 100;
/**
 * The longest the scheduler sleeps: how soon it sees a schedule another process created or
 * changed (this process's own changes wake it at once). One indexed read per look.
 */
export const IDLE_LOOK_MS = 1000;
/** After a failed pass (database down), the next try. */
const RETRY_MS = 5000;

export interface SchedulerPass {
  /** Tasks submitted for ticks. */
  ran: number;
  /** Schedules claimed. */
  schedules: number;
}

/**
 * Turns due schedules into tasks, in the worker roles. It sleeps until the earliest next run
 * (a timer, at most IDLE_LOOK_MS), claims due schedules with a conditional update so several
 * processes share the work, submits one task per tick with the idempotency key
 * `schedule:<name>:<tick>` (so a tick never runs twice, even when two processes both handle
 * it after a lost claim), and records the next tick under its claim.
 */
@Injectable()
export class Scheduler implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(Scheduler.name);
  private timer?: NodeJS.Timeout;
  private pass: Promise<unknown> = Promise.resolve();
  private running = false;
  private unsubscribe?: () => void;

  constructor(
    private readonly store: ScheduleStore,
    private readonly schedules: SchedulesService,
    private readonly clock: ScheduleClock,
    private readonly changes: ScheduleChanges,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.schedules.reconcileDeclared();
    this.start();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.stop();
  }

  /** Starts the timer loop (boot does); a change in this process wakes it at once. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.unsubscribe = this.changes.subscribe(() => this.arm(0));
    this.arm(0);
  }

  /** Stops the loop and waits for a pass in progress. */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    this.unsubscribe?.();
    await this.pass.catch(() => undefined);
  }

  /**
   * One pass at the clock's current time: every due schedule claimed and run. Passes of this
   * process never overlap; tests call this to step a controlled clock.
   */
  runOnce(): Promise<SchedulerPass> {
    const pass = this.pass.catch(() => undefined).then(() => this.runDue(this.clock.now()));
    this.pass = pass;
    return pass;
  }

  private arm(delayMs: number): void {
    if (!this.running) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.wake(), Math.min(Math.max(0, delayMs), IDLE_LOOK_MS));
    this.timer.unref();
  }

  private async wake(): Promise<void> {
    let delay = RETRY_MS;
    try {
      const now = this.clock.now();
      const due = await this.store.nextDueAt(now);
      if (due !== null && due <= now) await this.runOnce();
      const next = await this.store.nextDueAt(this.clock.now());
      delay = next === null ? IDLE_LOOK_MS : next - this.clock.now();
    } catch (error) {
      this.logger.error(
        `scheduler pass failed; trying again in ${RETRY_MS} ms`,
        (error as Error).stack,
      );
    }
    this.arm(delay);
  }

  private async runDue(now: number): Promise<SchedulerPass> {
    const result: SchedulerPass = { ran: 0, schedules: 0 };
    for (;;) {
      const claimed = await this.store.claimDue(now, CLAIM_BATCH, CLAIM_LEASE_MS);
      result.schedules += claimed.length;
      const records = await Promise.all(
        claimed.map((schedule) =>
          this.runSchedule(schedule, now).catch((error: Error) => {
            // Its claim expires and a later pass (here or elsewhere) tries the same ticks; their
            // keys make that safe.
            this.logger.error(`schedule "${schedule.name}": ${error.message}`, error.stack);
            return null;
          }),
        ),
      );
      const done = records.filter((record) => record !== null);
      if (claimed.length > 0) {
        await this.store.recordRuns(claimed[0].claimToken, done, this.clock.now());
      }
      result.ran += done.reduce((sum, record) => sum + record.ran, 0);
      if (claimed.length < CLAIM_BATCH) return result;
    }
  }

  /** Runs a claimed schedule's due ticks as its missed and overlap rules say; says what it did. */
  private async runSchedule(
    schedule: ClaimedSchedule,
    now: number,
  ): Promise<ScheduleRunRecord & { name: string }> {
    const timing = timingOf(schedule);
    const left = schedule.limit === null ? Infinity : schedule.limit - schedule.runCount;
    const keep = Math.min(schedule.missed === 'all' ? MAX_BACKFILL : 1, left);
    const due = dueTicks(timing, schedule.nextRunAt!, now, keep);
    const ticks =
      schedule.missed === 'skip' ? due.run.filter((t) => now - t <= MISFIRE_AFTER_MS) : due.run;
    const missed = due.passed + due.run.length - ticks.length;
    let overlapSkipped = 0;
    let ran = 0;
    let lastRunAt: number | null = null;
    let lastTaskId = schedule.lastTaskId;
    for (const tick of ticks) {
      if (!schedule.overlap && (await this.schedules.unfinished(lastTaskId))) {
        overlapSkipped += 1;
        continue;
      }
      const task = await this.schedules.runTick(schedule, tick);
      ran += 1;
      lastRunAt = tick;
      if (task) lastTaskId = task.id;
    }
    if (missed > 0) {
      this.logger.warn(
        `schedule "${schedule.name}": ${missed} tick(s) missed (${schedule.missed})`,
      );
    }
    const limitReached = schedule.limit !== null && schedule.runCount + ran >= schedule.limit;
    const next = limitReached ? null : due.next;
    return {
      name: schedule.name,
      nextRunAt: next,
      state: next === null ? 'finished' : 'active',
      ran,
      missed,
      overlapSkipped,
      lastRunAt,
      lastTaskId: lastRunAt === null ? null : lastTaskId,
    };
  }
}

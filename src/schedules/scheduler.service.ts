import {
  type BeforeApplicationShutdown,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { RepeatLog } from '../common/repeat-log';
import { storageFault } from '../common/storage-errors';
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
 * it after a lost claim), the ticks of a claimed batch in one insert, and records the next tick
 * under its claim.
 */
@Injectable()
export class Scheduler implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(Scheduler.name);
  /** A full disk or a database away fails every pass alike: one line per interval, counted. */
  private readonly storageLog = new RepeatLog((line) => this.logger.error(line));
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
      const fault = storageFault(error);
      if (fault) {
        const line = `scheduler pass failed (${fault}: ${(error as Error).message}); trying again every ${RETRY_MS} ms`;
        this.storageLog.report(line, line);
      } else {
        this.logger.error(
          `scheduler pass failed; trying again in ${RETRY_MS} ms`,
          (error as Error).stack,
        );
      }
    }
    this.arm(delay);
  }

  private async runDue(now: number): Promise<SchedulerPass> {
    const result: SchedulerPass = { ran: 0, schedules: 0 };
    for (;;) {
      const claimed = await this.store.claimDue(now, CLAIM_BATCH, CLAIM_LEASE_MS);
      result.schedules += claimed.length;
      const done = await this.runClaimed(claimed, now);
      if (claimed.length > 0) {
        await this.store.recordRuns(claimed[0].claimToken, done, this.clock.now());
      }
      result.ran += done.reduce((sum, record) => sum + record.ran, 0);
      if (claimed.length < CLAIM_BATCH) return result;
    }
  }

  /**
   * Runs the claimed schedules' due ticks as their missed and overlap rules say, the tasks of a
   * round of ticks created in one batch; says what it did for each schedule that did not fail.
   * A round holds every tick of a schedule that allows overlap, and the next tick of one that
   * does not, once its previous run (maybe made in the round before) is found finished.
   */
  private async runClaimed(
    claimed: ClaimedSchedule[],
    now: number,
  ): Promise<(ScheduleRunRecord & { name: string })[]> {
    const runs = claimed.map((schedule) => this.plan(schedule, now));
    for (;;) {
      const round = (await Promise.all(runs.map((run) => this.nextTicks(run)))).flat();
      if (round.length === 0) break;
      let outcomes: PromiseSettledResult<{ id: string } | null>[];
      try {
        outcomes = await this.schedules.runTicks(
          round.map(({ run, tick }) => ({ schedule: run.schedule, tick })),
        );
      } catch (error) {
        for (const { run } of round) run.error ??= error as Error;
        continue;
      }
      round.forEach(({ run, tick }, i) => {
        const outcome = outcomes[i];
        if (outcome.status === 'rejected') {
          run.error ??= outcome.reason as Error;
          return;
        }
        run.ran += 1;
        run.lastRunAt = tick;
        if (outcome.value) run.lastTaskId = outcome.value.id;
      });
    }
    const records: (ScheduleRunRecord & { name: string })[] = [];
    for (const run of runs) {
      const { schedule, error } = run;
      if (error) {
        // Its claim expires and a later pass (here or elsewhere) tries the same ticks; their
        // keys make that safe.
        this.logger.error(`schedule "${schedule.name}": ${error.message}`, error.stack);
        continue;
      }
      records.push(this.record(run));
    }
    return records;
  }

  /** A claimed schedule's due ticks, as its missed rule keeps them, none run yet. */
  private plan(schedule: ClaimedSchedule, now: number): ScheduleRun {
    const run: ScheduleRun = {
      schedule,
      ticks: [],
      taken: 0,
      next: null,
      missed: 0,
      overlapSkipped: 0,
      ran: 0,
      lastRunAt: null,
      lastTaskId: schedule.lastTaskId,
    };
    try {
      const timing = timingOf(schedule);
      const left = schedule.limit === null ? Infinity : schedule.limit - schedule.runCount;
      const keep = Math.min(schedule.missed === 'all' ? MAX_BACKFILL : 1, left);
      const due = dueTicks(timing, schedule.nextRunAt!, now, keep);
      run.ticks =
        schedule.missed === 'skip' ? due.run.filter((t) => now - t <= MISFIRE_AFTER_MS) : due.run;
      run.missed = due.passed + due.run.length - run.ticks.length;
      run.next = due.next;
    } catch (error) {
      run.error = error as Error;
    }
    return run;
  }

  /** The schedule's ticks for the next round: all that are left, or with overlap: false one. */
  private async nextTicks(run: ScheduleRun): Promise<{ run: ScheduleRun; tick: number }[]> {
    if (run.error) return [];
    if (run.schedule.overlap) {
      const ticks = run.ticks.slice(run.taken);
      run.taken = run.ticks.length;
      return ticks.map((tick) => ({ run, tick }));
    }
    while (run.taken < run.ticks.length) {
      const tick = run.ticks[run.taken++];
      try {
        if (await this.schedules.unfinished(run.lastTaskId)) {
          run.overlapSkipped += 1;
          continue;
        }
      } catch (error) {
        run.error = error as Error;
        return [];
      }
      return [{ run, tick }];
    }
    return [];
  }

  /** What a schedule's pass did, and its next run. */
  private record(run: ScheduleRun): ScheduleRunRecord & { name: string } {
    const { schedule, missed, ran, lastRunAt } = run;
    if (missed > 0) {
      this.logger.warn(
        `schedule "${schedule.name}": ${missed} tick(s) missed (${schedule.missed})`,
      );
    }
    const limitReached = schedule.limit !== null && schedule.runCount + ran >= schedule.limit;
    const next = limitReached ? null : run.next;
    return {
      name: schedule.name,
      nextRunAt: next,
      state: next === null ? 'finished' : 'active',
      ran,
      missed,
      overlapSkipped: run.overlapSkipped,
      lastRunAt,
      lastTaskId: lastRunAt === null ? null : run.lastTaskId,
    };
  }
}

/** One claimed schedule within a pass: its due ticks and what running them has done so far. */
interface ScheduleRun {
  schedule: ClaimedSchedule;
  /** To run, oldest first. */
  ticks: number[];
  /** How many of `ticks` have been run or skipped. */
  taken: number;
  /** The run after these ticks (null: none). */
  next: number | null;
  missed: number;
  overlapSkipped: number;
  ran: number;
  lastRunAt: number | null;
  lastTaskId: string | null;
  /** Set when something failed: the schedule is not recorded, and its claim expires. */
  error?: Error;
}

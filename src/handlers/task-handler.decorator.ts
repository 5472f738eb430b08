import { SetMetadata, type Type } from '@nestjs/common';

export const TASK_HANDLER_METADATA = 'taskq:task_handler';

/** The action that catches every action without a handler of its own (the tutorial's else-branch). */
export const FALLBACK_ACTION = '*';

export interface TaskHandlerOptions {
  /**
   * A class-validator class for the task's `data`; `POST /tasks` answers 400 naming the field
   * when the data does not fit, so bad input never reaches a worker.
   */
  dataType?: Type<object>;
  /** Attempts for this action's tasks; defaults to TASK_MAX_ATTEMPTS. */
  maxAttempts?: number;
  /** Per-attempt time limit for this action's tasks; defaults to TASK_TIMEOUT_MS. */
  timeoutMs?: number;
  /**
   * The queue this action's tasks go to (and are consumed from); defaults to QUEUE_NAME. A queue
   * not declared in QUEUE_TOPOLOGY is carried by the default queue's driver.
   */
  queue?: string;
  /**
   * Runs this action on a schedule: a schedule named after the action is created or updated at
   * boot (and disabled when the option is removed). See README, "Schedules".
   */
  schedule?: TaskHandlerSchedule;
}

/** A code-declared schedule: `cron` or `every`, and optionally how its tasks look. */
export interface TaskHandlerSchedule {
  /** 5 fields, or 6 with seconds first. Not with `every`. */
  cron?: string;
  /** A duration such as '30s', '15m' or '1h30m', at least 1s. Not with `cron`. */
  every?: string;
  /** IANA time zone the cron fields are read in; default UTC. */
  timezone?: string;
  /** Ticks passed while no scheduler ran: 'skip', 'latest' (default) or 'all'. */
  missed?: 'skip' | 'latest' | 'all';
  /** False: a tick is skipped while the previous run is queued or running. Default true. */
  overlap?: boolean;
  data?: Record<string, unknown>;
  priority?: number;
}

export interface TaskHandlerMetadata extends TaskHandlerOptions {
  action: string;
}

/**
 * Marks a provider method as the handler of `action`. The method is called as
 * `(data, ctx: TaskContext)`; what it returns is stored as the task's result, what it throws
 * fails the attempt. Use FALLBACK_ACTION (`'*'`) for a catch-all.
 *
 * @example
 *   @TaskHandler('uppercase', { dataType: UppercaseData })
 *   uppercase(data: UppercaseData) { return { output: data.text.toUpperCase() }; }
 */
export const TaskHandler = (action: string, options: TaskHandlerOptions = {}): MethodDecorator =>
  SetMetadata<string, TaskHandlerMetadata>(TASK_HANDLER_METADATA, { action, ...options });

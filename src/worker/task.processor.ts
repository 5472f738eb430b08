import { Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import {
  type Delivery,
  type FailureDecision,
  MAX_ATTEMPTS_HEADER,
  type MessageProcessor,
  NonRetryableError,
  type SharedWrite,
} from '../queue';
import { TaskTimeoutError } from './errors/task-timeout.error';
import type { TaskContext } from '../handlers/task-context.interface';
import { TaskEvents } from '../tasks/task-events.service';
import { TaskHandlerExplorer } from '../handlers/task-handler.explorer';
import type { TaskMessage } from '../tasks/task-message.interface';
import { TaskStatus } from '../persistence/task-status.enum';
import { CLAIMED_HEADER, RECLAIM_HEADER, TaskStatements } from '../persistence/task-statements';

/** Progress writes per task are at most this frequent; the last value always lands. */
const PROGRESS_INTERVAL_MS = 250;
/** How often running tasks are checked for a cancel made by another process. */
const CANCEL_POLL_MS = 1000;

interface RunningTask {
  stop: AbortController;
  /** Set by a cancel through the API, whichever reason aborted `stop` first. */
  cancelled: boolean;
}

/** What AbortSignal.timeout() aborts with: handlers see a time limit's usual reason. */
function timeoutReason(): DOMException {
  return new DOMException('The operation was aborted due to timeout', 'TimeoutError');
}

/** The abort reason of a task cancelled through the API. */
class TaskCancelled extends Error {
  override readonly name = 'TaskCancelled';
}

/**
 * Turns a queue delivery into a handler call and a recorded outcome:
 * claim the row (fenced) → run the handler → record result or failure → only then settle.
 */
@Injectable()
export class TaskProcessor implements MessageProcessor<TaskMessage>, OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(TaskProcessor.name);
  /** The fencing token each delivery claimed its row with. */
  private readonly tokens = new WeakMap<Delivery<TaskMessage>, string>();
  /** Stop switches of the tasks running in this process, and whether a cancel pulled them. */
  private readonly running = new Map<string, RunningTask>();
  private cancelPoll?: NodeJS.Timeout;
  private unsubscribe?: () => void;
  /** Deliveries that found nothing to claim (duplicates or stale), acked and skipped. */
  duplicates = 0;
  /** Messages naming a task that does not exist, acked and dropped. */
  orphans = 0;
  /** Outcomes not recorded because the claim had been lost meanwhile. */
  lostClaims = 0;

  constructor(
    private readonly store: TaskStatements,
    private readonly explorer: TaskHandlerExplorer,
    private readonly events: TaskEvents,
  ) {}

  async process(delivery: Delivery<TaskMessage>, signal: AbortSignal): Promise<SharedWrite | void> {
    const { taskId, action, data, timeoutMs } = delivery.body;
    // A driver whose messages are the task rows claimed the row itself: its token is ours.
    const claimed = delivery.headers[CLAIMED_HEADER];
    const token = claimed ?? randomUUID();
    if (
      !claimed &&
      !(await this.store.claim(taskId, delivery.attempt, token, delivery.deliveryCount > 1)) &&
      !(await this.reclaim(delivery, token))
    ) {
      if (await this.store.exists(taskId)) {
        this.duplicates += 1;
        this.logger.debug(`task ${taskId}: delivery ${delivery.id} has nothing to claim; skipped`);
      } else {
        this.orphans += 1;
        this.logger.warn(
          `message ${delivery.id} names task ${taskId}, which does not exist; dropped`,
        );
      }
      return;
    }
    this.tokens.set(delivery, token);
    this.emit(taskId, action, TaskStatus.Running);

    const handler = this.explorer.resolve(action);
    if (!handler) throw new NonRetryableError(`no handler for action "${action}"`);

    // One controller carries every reason to stop: a cancel, the time limit, or the pool's
    // shutdown signal (forwarded). AbortSignal.any() over three signals cost more CPU per task
    // than the claim's SQL.
    const run: RunningTask = { stop: new AbortController(), cancelled: false };
    const taskSignal = run.stop.signal;
    const onShutdown = (): void => run.stop.abort(signal.reason);
    if (signal.aborted) onShutdown();
    else signal.addEventListener('abort', onShutdown, { once: true });
    const timer = timeoutMs
      ? setTimeout(() => run.stop.abort(timeoutReason()), timeoutMs).unref()
      : undefined;
    this.track(taskId, run);
    try {
      const ctx: TaskContext = {
        taskId,
        action,
        attempt: delivery.attempt,
        maxAttempts: Number(delivery.headers[MAX_ATTEMPTS_HEADER]) || delivery.attempt,
        signal: taskSignal,
        progress: this.progressReporter(taskId, action, token),
      };
      const result = await untilAborted(
        Promise.resolve().then(() => handler.fn(data, ctx)),
        taskSignal,
      );
      // Recorded by the worker pool, with the ack where the driver shares this database.
      return this.store.completion(taskId, token, result, (applied) => {
        if (applied) return this.emit(taskId, action, TaskStatus.Completed);
        this.lostClaims += 1;
        this.logger.warn(
          `task ${taskId}: claim lost before completion (cancelled or taken over); result discarded`,
        );
      });
    } catch (error) {
      if (run.cancelled) return; // cancelled: the row says so already; ack, no retry
      if (signal.aborted) throw signal.reason; // shutdown: the worker pool leaves it unsettled
      if (taskSignal.aborted) throw new TaskTimeoutError(timeoutMs!);
      throw error;
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onShutdown);
      this.untrack(taskId);
    }
  }

  async onFailure(
    delivery: Delivery<TaskMessage>,
    error: unknown,
    decision: FailureDecision,
  ): Promise<SharedWrite | void> {
    const { taskId, action } = delivery.body;
    const token = this.tokens.get(delivery);
    const message = error instanceof Error ? error.message : String(error);
    if (decision.kind === 'dead') {
      this.logger.error(
        `task ${taskId} (${action}) failed for good on attempt ${delivery.attempt}: ${message}`,
        error instanceof Error ? error.stack : undefined,
      );
    }
    // Without a token the row was never claimed (the claim itself failed): nothing to record.
    if (!token) return;
    const final = decision.kind === 'dead';
    // Recorded by the worker pool, with the nack or dead-letter where the driver shares this
    // database: a crash in between cannot leave a queued row whose message is still leased.
    return this.store.failure(
      taskId,
      token,
      message,
      final,
      (applied) => {
        if (applied) this.emit(taskId, action, final ? TaskStatus.Failed : TaskStatus.Queued);
        else this.lostClaims += 1;
      },
      decision.kind === 'retry' ? decision.delayMs : 0,
    );
  }

  /** A reconciler's message for a running row whose delivery was lost (TaskReconciler). */
  private reclaim(delivery: Delivery<TaskMessage>, token: string): Promise<boolean> {
    const stale = delivery.headers[RECLAIM_HEADER];
    if (!stale) return Promise.resolve(false);
    return this.store.reclaim(delivery.body.taskId, stale, delivery.attempt, token);
  }

  /** A cancel made through this process's API stops its handler at once, without the poll. */
  onModuleInit(): void {
    this.unsubscribe = this.events.subscribe((event) => {
      if (event.type === 'status' && event.status === TaskStatus.Cancelled) {
        this.abortIfRunning(event.taskId);
      }
    });
  }

  /** Aborts the task's handler if it runs in this process. */
  abortIfRunning(taskId: string): void {
    const run = this.running.get(taskId);
    if (!run) return;
    run.cancelled = true;
    run.stop.abort(new TaskCancelled(`task ${taskId} was cancelled`));
  }

  onModuleDestroy(): void {
    this.unsubscribe?.();
    if (this.cancelPoll) clearInterval(this.cancelPoll);
  }

  private track(taskId: string, run: RunningTask): void {
    this.running.set(taskId, run);
    // Cancels arrive through the API, maybe in another process: look for them while work runs.
    this.cancelPoll ??= setInterval(() => void this.pollCancels(), CANCEL_POLL_MS).unref();
  }

  private untrack(taskId: string): void {
    this.running.delete(taskId);
    if (this.running.size === 0 && this.cancelPoll) {
      clearInterval(this.cancelPoll);
      this.cancelPoll = undefined;
    }
  }

  private async pollCancels(): Promise<void> {
    try {
      for (const id of await this.store.cancelledAmong([...this.running.keys()]))
        this.abortIfRunning(id);
    } catch (error) {
      this.logger.warn(`checking for cancelled tasks failed: ${(error as Error).message}`);
    }
  }

  private emit(taskId: string, action: string, status: TaskStatus): void {
    this.events.emit({ type: 'status', taskId, action, status, at: Date.now() });
  }

  private progressReporter(taskId: string, action: string, token: string): TaskContext['progress'] {
    let last = 0;
    let pending: { percent: number; message: string | null } | undefined;
    let timer: NodeJS.Timeout | undefined;
    const write = (percent: number, message: string | null): void => {
      last = Date.now();
      this.store.progress(taskId, token, percent, message).then(
        (stored) => {
          if (!stored) return;
          this.events.emit({
            type: 'progress',
            taskId,
            action,
            status: TaskStatus.Running,
            progress: percent,
            progressMessage: message,
            at: last,
          });
        },
        (error: unknown) =>
          this.logger.warn(`task ${taskId}: progress not stored: ${(error as Error).message}`),
      );
    };
    return (percent: number, message?: string) => {
      const value = Math.max(0, Math.min(100, Math.round(Number(percent) || 0)));
      const text = message === undefined ? null : String(message).slice(0, 500);
      const wait = last + PROGRESS_INTERVAL_MS - Date.now();
      if (wait <= 0) return write(value, text);
      pending = { percent: value, message: text };
      timer ??= setTimeout(() => {
        timer = undefined;
        if (pending) write(pending.percent, pending.message);
        pending = undefined;
      }, wait);
      timer.unref();
    };
  }
}

/**
 * Settles with the handler's result, or rejects as soon as `signal` aborts, so a handler that
 * ignores its signal does not hold a worker forever. Its promise is abandoned: whatever it
 * returns later is discarded (the claim has moved on) and its rejection is swallowed.
 */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  work.catch(() => undefined);
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: Error) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

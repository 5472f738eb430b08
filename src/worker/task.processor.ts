import {
  Injectable,
  Logger,
  type OnModuleDestroy,
  type OnModuleInit,
  Optional,
} from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { RepeatLog } from '../common/repeat-log';
import { DatabaseUnavailableError, storageFault } from '../common/storage-errors';
import { DatabaseFileMonitor } from '../persistence/database-file.monitor';
import {
  type Delivery,
  type FailureDecision,
  MAX_ATTEMPTS_HEADER,
  type MessageProcessor,
  NonRetryableError,
  type SharedWrite,
  type TableDelivery,
} from '../queue';
import type { TaskActor } from '../auth/actor';
import { ApiKeyStore } from '../auth/api-key.store';
import { TaskTimeoutError } from './errors/task-timeout.error';
import type { TaskContext } from '../handlers/task-context.interface';
import { TaskEvents } from '../tasks/task-events.service';
import { TaskHandlerExplorer } from '../handlers/task-handler.explorer';
import {
  CREATED_AT_HEADER,
  DUE_AT_HEADER,
  type TaskMessage,
} from '../tasks/task-message.interface';
import { TaskMetrics } from '../observability/metrics';
import { withTaskLogFields } from '../observability/logging';
import { inSpan, messageContext, SpanKind } from '../observability/tracing';
import { TaskStatus } from '../persistence/task-status.enum';
import {
  CLAIMED_ACTOR_KEY_HEADER,
  CLAIMED_HEADER,
  CLAIMED_TENANT_HEADER,
  RECLAIM_HEADER,
  TaskStatements,
} from '../persistence/task-statements';

/** Progress writes per task are at most this frequent; the last value always lands. */
const PROGRESS_INTERVAL_MS = 250;
/** How often running tasks are checked for a cancel made by another process. */
const CANCEL_POLL_MS = 1000;
/** Longest pause between claims the store could not write (disk full, database away). */
const CLAIM_RETRY_MAX_MS = 5000;

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
  private readonly storageLog = new RepeatLog((line) => this.logger.warn(line));
  /** The fencing token each delivery claimed its row with, and who its task runs for. */
  private readonly claims = new WeakMap<
    Delivery<TaskMessage>,
    { token: string; actor: TaskActor }
  >();
  /** Stop switches of the tasks running in this process, and whether a cancel pulled them. */
  private readonly running = new Map<string, RunningTask>();
  private cancelPoll?: NodeJS.Timeout;
  private unsubscribe?: () => void;
  /** Deliveries that found nothing to claim (duplicates or stale), acked and skipped. */
  duplicates = 0;
  /** Messages naming a task that does not exist: dropped, or dead-lettered when keys are on. */
  orphans = 0;
  /** Outcomes not recorded because the claim had been lost meanwhile. */
  lostClaims = 0;
  /** Tasks failed unrun because their actor may not run them (see ApiKeyStore.refusal). */
  refused = 0;

  constructor(
    private readonly store: TaskStatements,
    private readonly explorer: TaskHandlerExplorer,
    private readonly events: TaskEvents,
    private readonly keys: ApiKeyStore,
    private readonly metrics: TaskMetrics,
    /** SQLite: once the file is deleted or replaced, no new task starts (its writes would be lost). */
    @Optional() private readonly databaseFile?: DatabaseFileMonitor,
  ) {}

  /**
   * One delivery, in a span joined to the trace its message carries (the POST /tasks that
   * created it, in whichever process).
   */
  async process(delivery: Delivery<TaskMessage>, signal: AbortSignal): Promise<SharedWrite | void> {
    const body = delivery.body as Partial<TaskMessage> | null;
    if (typeof body?.taskId !== 'string' || typeof body.action !== 'string') {
      // Decoded by the driver, but no task message (another publisher, a bug): retried it would
      // fail the same way, so it goes straight to the dead letters, kept with the reason.
      throw new NonRetryableError('malformed task message: string taskId and action expected');
    }
    const { taskId, action } = delivery.body;
    return inSpan(
      `task ${action}`,
      {
        kind: SpanKind.CONSUMER,
        parent: messageContext(delivery.headers),
        linkParent: true,
        attributes: {
          'taskq.task_id': taskId,
          'taskq.action': action,
          'taskq.attempt': delivery.attempt,
          'messaging.destination.name': delivery.queue,
          'messaging.message.id': delivery.id,
        },
      },
      () => this.run(delivery, signal),
    );
  }

  /** Every log line about a delivery (ours, the handler's, the pool's) names its task. */
  inScope<R>(delivery: Delivery<TaskMessage>, work: () => R): R {
    return withTaskLogFields(logFields(delivery), work);
  }

  private async run(
    delivery: Delivery<TaskMessage>,
    signal: AbortSignal,
  ): Promise<SharedWrite | void> {
    const { taskId, action, data, timeoutMs } = delivery.body;
    const labels = { queue: delivery.queue, action };
    // A driver whose messages are the task rows claimed the row itself: its token is ours, and
    // so is who the task runs for, which that claim read from the row. Only such a delivery is
    // believed: on any other, these headers are a message's, which anyone may write.
    const fromTable = (delivery as Partial<TableDelivery>).settledByOutcome === true;
    const claimed = fromTable ? delivery.headers[CLAIMED_HEADER] : undefined;
    const token = claimed ?? randomUUID();
    const actor = claimed
      ? (claimedActor(delivery.headers) ?? (await this.store.actorOf(taskId)))
      : await this.claimWhenStoreWrites(delivery, token, signal);
    if (!actor) {
      if (await this.store.exists(taskId)) {
        this.duplicates += 1;
        this.metrics.duplicates.inc(labels);
        this.logger.debug(`task ${taskId}: delivery ${delivery.id} has nothing to claim; skipped`);
      } else {
        this.orphans += 1;
        this.metrics.orphans.inc(labels);
        // With keys, a message naming no task is one nobody with a key made (another path to
        // the broker): it goes to the dead letters with the reason rather than out of sight.
        if (this.keys.mode === 'keys') {
          throw new NonRetryableError(
            `refused: message ${delivery.id} names task ${taskId}, which does not exist (no actor)`,
          );
        }
        this.logger.warn(
          `message ${delivery.id} names task ${taskId}, which does not exist; dropped`,
        );
      }
      return;
    }
    this.claims.set(delivery, { token, actor });
    this.emit(taskId, actor.tenant, action, TaskStatus.Running);
    const startedAt = Date.now();
    const handlerStart = performance.now();
    // First attempt, first delivery: the wait since the task became due. Retries wait for
    // their backoff by design, which is not pickup latency.
    const dueAt = Number(delivery.headers[DUE_AT_HEADER]);
    if (delivery.attempt === 1 && delivery.deliveryCount === 1 && dueAt > 0) {
      this.metrics.pickupLatency.observe(labels, Math.max(0, startedAt - dueAt) / 1000);
    }
    const handled = (outcome: string): void => {
      this.metrics.handlerDuration.observe(
        { ...labels, outcome },
        (performance.now() - handlerStart) / 1000,
      );
    };

    // The action policy again, against the keys in force now: a task that reached the queue
    // another way, or whose key was revoked since, fails unrun and is dead-lettered.
    const refusal = this.keys.refusal(actor, action);
    if (refusal) {
      this.refused += 1;
      throw new NonRetryableError(refusal);
    }
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
    const progress = this.progressReporter(taskId, actor.tenant, action, token);
    try {
      const ctx: TaskContext = {
        taskId,
        action,
        attempt: delivery.attempt,
        maxAttempts: Number(delivery.headers[MAX_ATTEMPTS_HEADER]) || delivery.attempt,
        signal: taskSignal,
        progress: progress.report,
        actor: { keyName: actor.keyName, tenant: actor.tenant },
      };
      const result = await untilAborted(
        Promise.resolve().then(() => handler.fn(data, ctx)),
        taskSignal,
      );
      // The last report first: written after the outcome, it would find the claim gone and be
      // dropped (on PostgreSQL the two writes take separate connections and can pass each other).
      await progress.flush();
      handled('completed');
      // Recorded by the worker pool, with the ack where the driver shares this database.
      return this.store.completion(taskId, token, result, (applied) => {
        if (applied) {
          this.metrics.completed.inc(labels);
          this.observeEndToEnd(delivery, 'completed');
          return this.emit(taskId, actor.tenant, action, TaskStatus.Completed);
        }
        this.lostClaims += 1;
        this.logger.warn(
          `task ${taskId}: claim lost before completion (cancelled or taken over); result discarded`,
        );
      });
    } catch (error) {
      if (run.cancelled) {
        handled('cancelled');
        return; // cancelled: the row says so already; ack, no retry
      }
      if (signal.aborted) throw signal.reason; // shutdown: the worker pool leaves it unsettled
      if (taskSignal.aborted) {
        handled('timed_out');
        this.metrics.timedOut.inc(labels);
        throw new TaskTimeoutError(timeoutMs!);
      }
      handled('failed');
      throw error;
    } finally {
      progress.cancel();
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
    // A malformed message (no task in it, even a null body) fails here too, unclaimed.
    const { taskId, action } = (delivery.body ?? {}) as Partial<TaskMessage>;
    const claim = this.claims.get(delivery);
    const message = error instanceof Error ? error.message : String(error);
    if (decision.kind === 'dead') {
      this.logger.error(
        `task ${taskId} (${action}) failed for good on attempt ${delivery.attempt}: ${message}`,
        error instanceof Error ? error.stack : undefined,
      );
    }
    // Without a token the row was never claimed (the claim itself failed): nothing to record.
    if (!claim) return;
    const { token, actor } = claim;
    const task = delivery.body; // claimed, so a task message
    const labels = { queue: delivery.queue, action: task.action };
    const final = decision.kind === 'dead';
    // Recorded by the worker pool, with the nack or dead-letter where the driver shares this
    // database: a crash in between cannot leave a queued row whose message is still leased.
    return this.store.failure(
      task.taskId,
      token,
      message,
      final,
      (applied) => {
        if (!applied) {
          this.lostClaims += 1;
          return;
        }
        if (final) {
          this.metrics.failed.inc(labels);
          this.observeEndToEnd(delivery, 'failed');
        } else {
          this.metrics.retried.inc(labels);
        }
        this.emit(
          task.taskId,
          actor.tenant,
          task.action,
          final ? TaskStatus.Failed : TaskStatus.Queued,
        );
      },
      decision.kind === 'retry' ? decision.delayMs : 0,
    );
  }

  private observeEndToEnd(delivery: Delivery<TaskMessage>, status: string): void {
    const createdAt = Number(delivery.headers[CREATED_AT_HEADER]);
    if (!(createdAt > 0)) return; // a message published before this header existed
    this.metrics.endToEndLatency.observe(
      { queue: delivery.queue, action: delivery.body.action, status },
      Math.max(0, Date.now() - createdAt) / 1000,
    );
  }

  /**
   * Claims the row, or finds nothing to claim. A claim the store cannot write (a full disk, the
   * database away) is no failed attempt: the task never started. Counting it as one would use
   * up the task's attempts during an outage and dead-letter a message whose row stays queued.
   * So the worker waits (growing pauses, logged once per interval) and tries again, which also
   * holds back its next deliveries until the store writes again; shutdown ends the wait. A
   * SQLite file deleted or replaced under the service counts as such a fault: a task started
   * now would record its outcome in a file no one will open again.
   */
  private async claimWhenStoreWrites(
    delivery: Delivery<TaskMessage>,
    token: string,
    signal: AbortSignal,
  ): Promise<TaskActor | null> {
    const { taskId } = delivery.body;
    for (let pauseMs = 100; ; pauseMs = Math.min(pauseMs * 2, CLAIM_RETRY_MAX_MS)) {
      try {
        const gone = this.databaseFile?.lastProblem;
        if (gone) throw new DatabaseUnavailableError(gone);
        // The actor comes from the row (read by the claim itself), never from the message, which
        // anything that can publish to the broker could have written.
        return (
          (await this.store.claimActor(
            taskId,
            delivery.attempt,
            token,
            delivery.deliveryCount > 1,
          )) ?? ((await this.reclaim(delivery, token)) ? await this.store.actorOf(taskId) : null)
        );
      } catch (error) {
        const fault = storageFault(error);
        if (!fault) throw error;
        this.storageLog.report(
          fault,
          `cannot claim tasks (${fault}: ${(error as Error).message}); workers wait for the store`,
        );
        await sleep(pauseMs, undefined, { signal });
      }
    }
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
    this.storageLog.close();
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

  private emit(taskId: string, tenant: string, action: string, status: TaskStatus): void {
    this.events.emit({ type: 'status', taskId, tenant, action, status, at: Date.now() });
  }

  /**
   * The handler's `ctx.progress`: at most one write per PROGRESS_INTERVAL_MS, the latest report
   * kept for the next slot. `flush` writes a held report now and resolves when the writes are
   * done; `cancel` drops a held one.
   */
  private progressReporter(
    taskId: string,
    tenant: string,
    action: string,
    token: string,
  ): { report: TaskContext['progress']; flush(): Promise<void>; cancel(): void } {
    let last = 0;
    let pending: { percent: number; message: string | null } | undefined;
    let timer: NodeJS.Timeout | undefined;
    let written: Promise<void> = Promise.resolve();
    const write = (percent: number, message: string | null): void => {
      last = Date.now();
      const at = last;
      const done = this.store.progress(taskId, token, percent, message).then(
        (stored) => {
          if (!stored) return;
          this.events.emit({
            type: 'progress',
            taskId,
            tenant,
            action,
            status: TaskStatus.Running,
            progress: percent,
            progressMessage: message,
            at,
          });
        },
        (error: unknown) =>
          this.logger.warn(`task ${taskId}: progress not stored: ${(error as Error).message}`),
      );
      written = Promise.all([written, done]).then(() => undefined);
    };
    const writePending = (): void => {
      clearTimeout(timer);
      timer = undefined;
      if (pending) write(pending.percent, pending.message);
      pending = undefined;
    };
    return {
      report: (percent: number, message?: string) => {
        const value = Math.max(0, Math.min(100, Math.round(Number(percent) || 0)));
        const text = message === undefined ? null : String(message).slice(0, 500);
        const wait = last + PROGRESS_INTERVAL_MS - Date.now();
        if (wait <= 0) return write(value, text);
        pending = { percent: value, message: text };
        timer ??= setTimeout(writePending, wait);
        timer.unref();
      },
      flush: () => {
        writePending();
        return written;
      },
      cancel: () => {
        clearTimeout(timer);
        timer = undefined;
        pending = undefined;
      },
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

/** The task fields every log line about a delivery carries (a malformed body has none). */
function logFields(delivery: Delivery<TaskMessage>) {
  const body = delivery.body as Partial<TaskMessage> | null;
  return {
    taskId: body?.taskId ?? '',
    action: body?.action ?? '',
    attempt: delivery.attempt,
    queue: delivery.queue,
  };
}

/** Who a task runs for, as the table's claim read it; undefined where the claim did not. */
function claimedActor(headers: Record<string, string>): TaskActor | undefined {
  const tenant = headers[CLAIMED_TENANT_HEADER];
  if (tenant === undefined) return undefined;
  return { tenant, keyName: headers[CLAIMED_ACTOR_KEY_HEADER] ?? null };
}
